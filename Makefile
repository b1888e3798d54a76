# Two commands for a fresh machine: `make demo` and `make test`. Each sets up its own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Python may write its bytecode caches (__pycache__, gitignored) even where the environment
# says not to (PYTHONDONTWRITEBYTECODE, set on this machine): the tests start some forty Python
# processes (test workers, commands, the benchmark's steps, worker servers), and without the
# caches each compiles derbyxl again and pytest rewrites every test module in each worker:
# 5 s of a 55 s run from a fresh clone (bench/README.md, tenth session).
PY := env -u PYTHONDONTWRITEBYTECODE $(BIN)/python

.PHONY: demo test test-fast test-oldest bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(BIN)/activate
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/derbyxl demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto

# The quick tier while working: everything but LibreOffice, the browser and the benchmark
# (make test and CI run them all).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -n auto -m "not (soffice or browser or bench)"

# The tests against the oldest releases pyproject.toml allows (a venv of its own).
test-oldest:
	$(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/pip install --quiet --upgrade pip
	.venv-oldest/bin/pip install --quiet -c .ci/oldest.txt -e '.[test]'
	env -u PYTHONDONTWRITEBYTECODE .venv-oldest/bin/python -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed
	$(BIN)/pip install --quiet datamaps || echo "datamaps not installed; the benchmark skips it"
	$(PY) bench/run.py --returns 1000 --repeat 5

clean:
	rm -rf $(VENV) .venv-oldest templates/*.xlsx returns/*.xlsx outputs/*.xlsx outputs/*.sqlite* outputs/*.csv outputs/archive
