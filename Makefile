# Two commands for a fresh machine: `make demo` and `make test`. Each sets up its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/derbyxl demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/pip install --quiet datamaps || echo "datamaps not installed; the benchmark skips it"
	$(BIN)/python bench/run.py --returns 1000 --repeat 5

clean:
	rm -rf $(VENV) templates/*.xlsx returns/*.xlsx outputs/*.xlsx outputs/*.sqlite*
