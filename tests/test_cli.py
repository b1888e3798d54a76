"""The command line: exit codes, output, and every command documented in the README."""

import json
import re
from pathlib import Path

import pytest

from derbyxl.cli import app, main

from .conftest import run, run_process

ROOT = Path(__file__).resolve().parent.parent


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "validate" in r.stdout and "consolidate" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("derbyxl ")


def test_register_check_sample():
    from derbyxl.register import sample_register_path

    r = run("register", "check", sample_register_path())
    assert r.returncode == 0
    assert "199 items in 9 portfolios (94 measures, 55 actions, 32 projects, 18 risks)" in r.stdout


def test_register_check_broken(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Ref,Kind,Description,Portfolio,Theme,Unit,Polarity,Target,Previous actual\nA,action,d,P,T,,,,\nA,thing,d,P,T,,,,\nM,measure,d,P,T,percent,,50%,\n")
    r = run("register", "check", bad)
    assert r.returncode == 1
    assert "row 3, column Ref" in r.stderr and "row 3, column Kind" in r.stderr and "row 4, column Polarity" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_console_command_exits_with_its_code_and_leaves_its_objects_to_the_system(monkeypatch):
    import gc

    from derbyxl import cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    before = gc.get_freeze_count()
    try:
        with pytest.raises(SystemExit) as exc:
            cli.entry()
        # Not walked again by the collector as the process ends (runner.ending).
        assert exc.value.code == 3 and gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_usage_errors_exit_2(tmp_path):
    assert run("validate", tmp_path / "nope.xlsx").returncode == 2
    r = run("templates", "--period", "2024-25-Q9", "--out", tmp_path)
    assert r.returncode == 2 and "not a period" in r.stderr and "Traceback" not in r.stderr
    assert run("register", "check", tmp_path / "missing.csv").returncode == 2
    assert run("frobnicate").returncode == 2
    # The same codes from the command as a process of its own (python -m derbyxl.cli).
    r = run_process("validate", tmp_path / "nope.xlsx")
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    assert run_process("frobnicate").returncode == 2


def test_validate_json_and_exit_codes(good_dir, tmp_path):
    r = run("validate", good_dir, "--period", "2024-25-Q4", "--json", "-")
    assert r.returncode == 0, r.stderr
    assert all(f["severity"] == "warning" for f in json.loads(r.stdout))
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really")
    out = tmp_path / "f.json"
    r = run("validate", good_dir, bad, "--json", out, "--annotate", tmp_path / "ann")
    assert r.returncode == 1
    records = json.loads(out.read_text())
    assert [(f["workbook"], f["code"]) for f in records if f["severity"] == "error"] == [("broken.xlsx", "corrupt-file")]


def test_validate_says_who_has_not_returned(good_dir, tmp_path):
    # A folder is the quarter so far: the officer is told who has sent nothing yet.
    folder = tmp_path / "returns"
    folder.mkdir()
    for p in good_dir.glob("*.xlsx"):
        if not p.name.startswith("Health"):
            (folder / p.name).write_bytes(p.read_bytes())
    r = run("validate", folder, "--period", "2024-25-Q4", "--no-cache")
    assert r.returncode == 0, r.stderr
    assert "Not returned for 2024/25 Q4: 1 of 9 portfolios (Health and Adult Care)" in r.stdout
    r = run("validate", good_dir, "--no-cache", "--json", "-")  # the findings alone on stdout
    assert isinstance(json.loads(r.stdout), list) and "Every portfolio has returned for 2024/25 Q4." in r.stderr
    # Files named one by one are not the quarter: nothing is said of the others.
    r = run("validate", folder / "Governance-and-Finance_2024-25-Q4.xlsx", "--no-cache")
    assert r.returncode == 0 and "returned" not in r.stdout


def test_a_file_that_cannot_be_replaced_is_a_clear_error(tmp_path):
    # On Windows a template open in Excel cannot be replaced; anywhere, neither can a folder
    # standing at its name. The officer is told which file, and what to do.
    out = tmp_path / "templates"
    (out / "Governance-and-Finance_2024-25-Q4.xlsx").mkdir(parents=True)
    r = run("templates", "--period", "2024-25-Q4", "--out", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Unexpected" not in r.stderr
    said = "".join(r.stderr.split())  # the console folds long lines, paths included
    assert f"couldnotwrite{out / 'Governance-and-Finance_2024-25-Q4.xlsx'}" in said and "closeitandrunagain" in said


def test_demo_end_to_end(tmp_path):
    r = run("demo", "--dir", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "outputs" / "master_2024-25-Q4.xlsx").exists()
    assert len(list((tmp_path / "templates").glob("*.xlsx"))) == 9
    chase = (tmp_path / "outputs" / "chase.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(chase) == 10 and all(",valid," in line for line in chase[1:])
    assert "Every portfolio has returned for 2024/25 Q4." in r.stdout
    r = run("history", "export", "--history", tmp_path / "outputs" / "history.sqlite", "--out", tmp_path / "h.csv")
    assert r.returncode == 0 and "199 rows" in r.stdout


def test_demo_refuses_to_overwrite_real_returns(tmp_path):
    (tmp_path / "returns").mkdir()
    (tmp_path / "returns" / "Governance-and-Finance_2024-25-Q4.xlsx").write_bytes(b"a real return")
    r = run("demo", "--dir", tmp_path)
    assert r.returncode == 2
    assert (tmp_path / "returns" / "Governance-and-Finance_2024-25-Q4.xlsx").read_bytes() == b"a real return"


def _commands(typer_app, prefix=""):
    import typer.main

    group = typer.main.get_command(typer_app)
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            out += [f"{prefix}{name} {sub}" for sub in cmd.commands]
        else:
            out.append(prefix + name)
    return out


@pytest.mark.parametrize("command", _commands(app))
def test_every_command_is_documented(command):
    readme = (ROOT / "README.md").read_text()
    assert f"`derbyxl {command}" in readme, f"README does not document `derbyxl {command}`"
    import typer.main

    group = typer.main.get_command(app)
    parts = command.split()
    cmd = group.commands[parts[0]]
    if len(parts) > 1:
        cmd = cmd.commands[parts[1]]
    assert "Example: derbyxl" in (cmd.help or ""), f"`{command}` help has no example"


def test_readme_opens_with_two_commands():
    head = (ROOT / "README.md").read_text().split("\n")[:12]
    assert any(re.match(r"make demo\b", line) for line in head) and any(re.match(r"make test\b", line) for line in head)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_main_returns_exit_codes():
    assert main(["--version"]) == 0


@pytest.mark.parametrize("columns", [80, 160])
def test_findings_read_at_80_columns_and_file_names_are_whole(tmp_path, good_dir, columns, monkeypatch):
    from rich.console import Console

    import derbyxl.cli as cli

    from .faults import mutate, set_input

    long_name = "Governance-and-Finance_2024-25-Q4 v2 CORRECTED after the call with Finance.xlsx"
    mutate(good_dir / "Governance-and-Finance_2024-25-Q4.xlsx", tmp_path / long_name, lambda wb: set_input(wb, "Measures", "CM PM03", "Actual", "lots"))
    # The command's consoles as a terminal COLUMNS wide makes them (rich reads it as they are made).
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setattr(cli, "out", Console())
    monkeypatch.setattr(cli, "err", Console(stderr=True, soft_wrap=True))
    r = run("validate", tmp_path / long_name, "--period", "2024-25-Q4")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert all(len(line) <= columns for line in lines) and max(map(len, lines)) > columns - 20  # the width was used
    assert "…" not in r.stdout  # nothing cut short
    joined = "".join(line.strip("│ ") for line in lines)
    assert long_name.replace(" ", "") in joined.replace(" ", "")
    if columns == 80:  # a block per finding: the message reads on its own lines, not a word a line
        assert "  not-a-number: The value is not a number: 'lots' is not a number" in r.stdout
        assert "  What to do: Type a plain number, without words." in r.stdout


def test_messages_with_brackets_are_printed_whole(tmp_path):
    # Rich would take "[parquet]" or a file named "[draft].xlsx" for markup and drop it.
    missing = tmp_path / "[draft] returns"
    r = run("consolidate", missing, "--period", "2024-25-Q4", "--out", tmp_path / "out")
    assert r.returncode == 2 and f"no such folder: {missing}" in r.stderr.replace("\n", "")


def test_help_reads_like_a_person_wrote_it():
    # No Python types (<bool>, <list[Path]>, <str>) and no braces round required arguments.
    commands = [[], ["validate"], ["templates"], ["consolidate"], ["migrate"], ["serve"], ["register", "check"], ["history", "export"], ["history", "restore"], ["portal", "add-user"]]
    for args in commands:
        r = run(*args, "--help")
        assert r.returncode == 0, args
        for odd in ("<bool>", "<list", "<str>", "<path>", "<int>", "{"):
            assert odd not in r.stdout, (args, odd, r.stdout)
    assert "Usage: derbyxl validate [OPTIONS] PATHS" in " ".join(run("validate", "--help").stdout.split())
    assert "--register -r FILE" in " ".join(run("validate", "--help").stdout.replace("│", " ").split())
