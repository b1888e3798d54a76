"""Officers' everyday slips: whatever is run by mistake, a recorded quarter is never replaced by
a worse one, and every slip says what happened and what to do (issue 15)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from derbyxl.consolidate import consolidate
from derbyxl.demo import fill_return
from derbyxl.history import History
from derbyxl.periods import Period
from derbyxl.register import load_register
from derbyxl.template import write_templates

from .conftest import council_answers, run, write_council_register

Q1 = Period.parse("2025-26-Q1")
Q1_ACTUALS = dict(AH_01=0.91, AH_02=9, PL_01=104, PL_02=140, RS_01=0.29, RS_02=300_000)


def fill_quarter(register, period, folder: Path, answers, *, skip=()) -> Path:
    templates = folder.parent / f"templates-{folder.name}"
    for info in write_templates(register, period, templates):
        if info.portfolio not in skip:
            fill_return(info.path, answers, folder / info.path.name)
    return folder


@pytest.fixture(scope="module")
def q1_returns(tmp_path_factory) -> Path:
    """The council's filled 2025/26 Q1 returns, made once (each test works on a copy)."""
    tmp = tmp_path_factory.mktemp("q1")
    register = load_register(write_council_register(tmp / "register.csv"))
    return fill_quarter(register, Q1, tmp / "returns_q1", council_answers(**Q1_ACTUALS))


@pytest.fixture
def recorded(tmp_path, q1_returns):
    """A council's 2025/26 Q1, consolidated: its register, returns, output folder and master."""
    reg_path = write_council_register(tmp_path / "register.csv")
    register = load_register(reg_path)
    returns = Path(shutil.copytree(q1_returns, tmp_path / "returns_q1"))  # with their times
    out = tmp_path / "outputs"
    result = consolidate(returns, register, Q1, out)
    assert result.master.exists() and not result.missing
    return {"register": reg_path, "returns": returns, "out": out, "master": result.master, "tmp": tmp_path}


def state(rec) -> tuple:
    """What must not change: the master's bytes and every row the history holds."""
    with contextlib.closing(sqlite3.connect(rec["out"] / "history.sqlite")) as db:
        rows = tuple(tuple(db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()) for t in ("run", "consolidation", "item_value", "submission"))
    return rec["master"].read_bytes(), rows


def test_forgot_register_on_consolidate_writes_nothing_and_says_so(recorded):
    before = state(recorded)
    r = run("consolidate", recorded["returns"], "--period", "2025-26-Q1", "--out", recorded["out"])
    assert r.returncode == 1
    assert "were made from register" in r.stderr and "bundled sample register" in r.stderr
    assert "pass --register with the register the templates came from" in r.stderr
    assert "Master written" not in r.stdout
    assert state(recorded) == before


def test_forgot_register_on_validate_is_one_message_first(recorded):
    r = run("validate", recorded["returns"], "--period", "2025-26-Q1", "--json", "-", "--history", recorded["tmp"] / "cache.sqlite")
    assert r.returncode == 1
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("Error: 3 of 3 returns were made from register") and "pass --register" in first
    import json

    findings = json.loads(r.stdout)
    # One finding per file, not dozens of missing and unknown items.
    assert sorted((f["workbook"], f["code"]) for f in findings) == sorted((p.name, "other-register") for p in recorded["returns"].glob("*.xlsx"))


def _refused_leaving_all_as_it_was(recorded, returns, words: str) -> None:
    """Consolidating ``returns`` into the recorded quarter exits 1 saying ``words``, and the
    outputs folder and history are as they were."""
    before = state(recorded)
    r = run("consolidate", returns, "--register", recorded["register"], "--period", "2025-26-Q1", "--out", recorded["out"])
    assert r.returncode == 1 and words in r.stderr, r.stderr
    assert state(recorded) == before


def test_wrong_folder_writes_nothing_and_names_the_periods(recorded):
    register = load_register(recorded["register"])
    q4 = fill_quarter(register, Period.parse("2024-25-Q4"), recorded["tmp"] / "returns_q4", council_answers(**Q1_ACTUALS))
    _refused_leaving_all_as_it_was(recorded, q4, "no valid return for 2025/26 Q1 among 3 file(s): 3 are for 2024/25 Q4 (is this the right folder, and the right --period?)")


def test_returns_saved_in_other_formats_write_nothing(recorded):
    other = recorded["tmp"] / "other"
    other.mkdir()
    for p in recorded["returns"].glob("*.xlsx"):
        shutil.copyfile(p, other / (p.stem + ".xlsm"))
    (other / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))
    shutil.copyfile(next(recorded["returns"].glob("Place_*.xlsx")), other / "Place.ods")
    _refused_leaving_all_as_it_was(recorded, other, "5 are not a workbook derbyxl reads")


def test_no_valid_return_in_a_fresh_quarter_writes_no_master(tmp_path):
    write_council_register(tmp_path / "register.csv")
    empty = tmp_path / "returns"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a return")
    r = run("consolidate", empty, "--register", tmp_path / "register.csv", "--period", "2025-26-Q1", "--out", tmp_path / "out")
    assert r.returncode == 1
    assert "no returns were found (only files that are not workbooks: notes.txt), so nothing was written for 2025/26 Q1" in r.stderr
    assert not (tmp_path / "out" / "master_2025-26-Q1.xlsx").exists()
    with History(tmp_path / "out" / "history.sqlite") as h:
        assert h.runs() == []


def test_fewer_valid_returns_refused_then_replaced_archived_and_restored(recorded):
    fewer = recorded["tmp"] / "fewer"
    shutil.copytree(recorded["returns"], fewer)
    next(fewer.glob("Place_*.xlsx")).unlink()
    before = state(recorded)
    first_master = recorded["master"].read_bytes()
    args = ("consolidate", fewer, "--register", recorded["register"], "--period", "2025-26-Q1", "--out", recorded["out"])
    r = run(*args)
    assert r.returncode == 1
    assert "2025/26 Q1 is already recorded (run 1" in r.stderr
    assert "3 valid returns were recorded, this run has 2" in r.stderr and "10 items with data were recorded, this run has 7" in r.stderr
    assert "--replace" in r.stderr and "derbyxl history restore 2025-26-Q1 1" in r.stderr
    assert state(recorded) == before

    r = run(*args, "--replace")
    assert r.returncode == 0, r.stderr
    assert recorded["master"].read_bytes() != first_master
    archived = list((recorded["out"] / "archive").glob("master_2025-26-Q1_*.xlsx"))
    assert len(archived) == 1 and archived[0].read_bytes() == first_master
    with History(recorded["out"] / "history.sqlite") as h:
        runs = h.runs(Q1)
        assert [(x.id, x.valid_returns, x.current) for x in runs] == [(1, 3, False), (2, 2, True)]
        assert runs[0].archived == str(archived[0])
        assert "PL 01" not in h.values_for(Q1)  # no return from Place in run 2

    r = run("history", "runs", "2025-26-Q1", "--history", recorded["out"] / "history.sqlite")
    assert r.returncode == 0 and "yes" in r.stdout

    r = run("history", "restore", "2025-26-Q1", "1", "--history", recorded["out"] / "history.sqlite")
    assert r.returncode == 0, r.stderr
    assert "Run 1 of 2025/26 Q1" in r.stdout
    assert recorded["master"].read_bytes() == first_master  # byte for byte
    with History(recorded["out"] / "history.sqlite") as h:
        assert h.current_run(Q1).id == 1
        assert h.values_for(Q1)["PL 01"]["actual"] == 104
        # The master of run 2, replaced by the restore, is archived in its turn.
        assert h.run(2).archived and Path(h.run(2).archived).exists()

    r = run("history", "restore", "2025-26-Q1", "7", "--history", recorded["out"] / "history.sqlite")
    assert r.returncode == 2 and "has no run 7 (its runs: 1, 2" in r.stderr


def test_another_register_for_a_recorded_quarter_is_refused(recorded):
    rows = [list(r) for r in __import__("tests.conftest", fromlist=["COUNCIL_ROWS"]).COUNCIL_ROWS]
    rows[0][2] = "Care reviews completed on time"  # a description edited: another register file
    edited = write_council_register(recorded["tmp"] / "edited.csv", rows)
    before = state(recorded)
    r = run("consolidate", recorded["returns"], "--register", edited, "--period", "2025-26-Q1", "--out", recorded["out"])
    assert r.returncode == 1 and "it was recorded from register" in r.stderr
    assert state(recorded) == before


def test_rerun_with_the_same_inputs_is_a_new_run_not_a_refusal(recorded):
    r = run("consolidate", recorded["returns"], "--register", recorded["register"], "--period", "2025-26-Q1", "--out", recorded["out"])
    assert r.returncode == 0, r.stderr
    with History(recorded["out"] / "history.sqlite") as h:
        assert [x.id for x in h.runs(Q1)] == [1, 2] and h.current_run(Q1).id == 2


def test_a_history_of_the_first_layout_is_brought_up_to_date(tmp_path):
    path = tmp_path / "history.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(
            """
            CREATE TABLE consolidation (period TEXT PRIMARY KEY, run_at TEXT NOT NULL, register_fingerprint TEXT NOT NULL, master TEXT, items INTEGER NOT NULL);
            CREATE TABLE item_value (period TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL, portfolio TEXT NOT NULL, theme TEXT, actual REAL, status TEXT, status_word TEXT, score INTEGER, commentary TEXT, note TEXT, source_file TEXT, sha256 TEXT, PRIMARY KEY (period, ref));
            CREATE TABLE submission (period TEXT NOT NULL, portfolio TEXT, file TEXT NOT NULL, sha256 TEXT, received TEXT, signed_by TEXT, signed_date TEXT, valid INTEGER NOT NULL, errors INTEGER NOT NULL, warnings INTEGER NOT NULL, used INTEGER NOT NULL, note TEXT);
            INSERT INTO consolidation VALUES ('2024-25-Q4', '2025-05-01T09:00:00+00:00', 'abc', 'outputs/master_2024-25-Q4.xlsx', 2);
            INSERT INTO item_value VALUES ('2024-25-Q4', 'A 1', 'measure', 'P', 'T', 0.5, 'Green', NULL, NULL, NULL, NULL, 'p.xlsx', 'ff');
            INSERT INTO item_value VALUES ('2024-25-Q4', 'A 2', 'action', 'P', 'T', NULL, 'No data', NULL, NULL, NULL, NULL, 'p.xlsx', 'ff');
            INSERT INTO submission VALUES ('2024-25-Q4', 'P', 'p.xlsx', 'ff', NULL, 'Lead', '2025-04-20', 1, 0, 0, 1, 'used');
            """
        )
    with History(path) as h:
        run_ = h.current_run("2024-25-Q4")
        assert (run_.id, run_.valid_returns, run_.items, run_.items_with_data, run_.register_fingerprint) == (1, 1, 2, 1, "abc")
        assert h.values_for("2024-25-Q4")["A 1"]["actual"] == 0.5
        assert h.latest_actuals() == {"A 1": 0.5}


# -- files get the user's umask --


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_every_file_derbyxl_writes_gets_the_umask(tmp_path, mask, mode):
    reg_path = write_council_register(tmp_path / "register.csv")
    register = load_register(reg_path)
    with umask(mask):
        returns = fill_quarter(register, Q1, tmp_path / "returns", council_answers(**Q1_ACTUALS))
        bad = next(returns.glob("Place_*.xlsx"))
        from tests.faults import mutate, set_input

        mutate(bad, returns / "Place draft.xlsx", lambda wb: set_input(wb, "Measures", "PL 01", "Actual", "lots"))
        from derbyxl.cli import main

        out = tmp_path / "outputs"
        assert main(["templates", "--register", str(reg_path), "--period", "2025-26-Q1", "--out", str(tmp_path / "templates")]) == 0
        assert main(["validate", str(returns), "--register", str(reg_path), "--period", "2025-26-Q1", "--annotate", str(tmp_path / "annotated"), "--chase", str(out / "chase.csv"), "--json", str(out / "findings.json"), "--history", str(out / "history.sqlite")]) == 1
        (returns / "Place draft.xlsx").unlink()
        assert main(["consolidate", str(returns), "--register", str(reg_path), "--period", "2025-26-Q1", "--out", str(out)]) == 0
        assert main(["consolidate", str(returns), "--register", str(reg_path), "--period", "2025-26-Q1", "--out", str(out)]) == 0  # archives the first master
        assert main(["history", "export", "--history", str(out / "history.sqlite"), "--out", str(out / "history.csv")]) == 0
    written = [
        *(tmp_path / "templates").glob("*.xlsx"),
        *(tmp_path / "annotated").glob("*.xlsx"),
        out / "master_2025-26-Q1.xlsx",
        *(out / "archive").glob("*.xlsx"),
        out / "chase.csv",
        out / "findings.json",
        out / "history.csv",
        out / "history.sqlite",
    ]
    assert len(list((tmp_path / "templates").glob("*.xlsx"))) == 3 and list((tmp_path / "annotated").glob("*.xlsx"))
    assert len(list((out / "archive").glob("*.xlsx"))) == 1
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# -- environment problems are usage errors: exit 2, the path named --


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only file system (a tmpfs mounted read-only), holding a history."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a file system here (needs root)")
    try:
        with History(folder / "history.sqlite"):
            pass
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_read_only_output_folder_is_exit_2_naming_it(recorded, read_only):
    r = run("consolidate", recorded["returns"], "--register", recorded["register"], "--period", "2025-26-Q1", "--out", read_only / "out")
    assert r.returncode == 2, r.stderr
    assert f"cannot write to {read_only / 'out'}" in r.stderr and "Read-only file system" in r.stderr
    assert "Traceback" not in r.stderr and "Unexpected" not in r.stderr
    r = run("templates", "--register", recorded["register"], "--period", "2025-26-Q1", "--out", read_only)
    assert r.returncode == 2 and f"cannot write to {read_only}" in r.stderr


def test_read_only_history_is_exit_2_naming_it(recorded, read_only):
    r = run("consolidate", recorded["returns"], "--register", recorded["register"], "--period", "2025-26-Q1", "--out", recorded["out"], "--history", read_only / "history.sqlite")
    assert r.returncode == 2, r.stderr
    assert f"cannot write to {read_only / 'history.sqlite'}" in r.stderr
    assert "Traceback" not in r.stderr and "OperationalError" not in r.stderr


def test_missing_history_folder_is_exit_2_and_starts_no_history(recorded):
    missing = recorded["tmp"] / "typo" / "history.sqlite"
    r = run("consolidate", recorded["returns"], "--register", recorded["register"], "--period", "2025-26-Q1", "--out", recorded["out"], "--history", missing)
    assert r.returncode == 2 and f"no folder {missing.parent}" in r.stderr
    assert not missing.parent.exists()


def test_output_path_under_a_file_is_exit_2(recorded):
    blocker = recorded["tmp"] / "a-file"
    blocker.write_text("x")
    r = run("consolidate", recorded["returns"], "--register", recorded["register"], "--period", "2025-26-Q1", "--out", blocker / "out")
    assert r.returncode == 2 and f"cannot write to {blocker / 'out'}" in r.stderr


# -- the cache holds everything a result depends on --


def _findings(report):
    return sorted((f.workbook, f.sheet, f.cell, f.code, f.message) for f in report.findings)


def test_cached_and_fresh_runs_agree_whatever_the_name_register_or_period(tmp_path, register, good_dir):
    from derbyxl.cache import FileCache
    from derbyxl.validate import validate_paths

    good = good_dir / "Governance-and-Finance_2024-25-Q4.xlsx"
    folder = tmp_path / "returns"
    folder.mkdir()
    shutil.copyfile(good, folder / "Governance-and-Finance_2024-25-Q4.xlsx")
    cache_path = tmp_path / "cache.sqlite"
    with FileCache(cache_path) as cache:  # the bytes' results kept under the .xlsx name
        assert validate_paths([folder], register, cache=cache).valid
    # The same bytes under the names a check reads: the extension decides macro-workbook and
    # wrong-file-type, whatever case it is written in.
    for name in ("x.xlsm", "X.XLSM", "y.XLSX", "noext", "z.xls"):
        shutil.copyfile(good, folder / name)
    other = load_register(write_council_register(tmp_path / "council.csv"))
    for reg, period in ((register, "2024-25-Q4"), (register, "2025-26-Q1"), (other, "2024-25-Q4")):
        with FileCache(cache_path) as cache:
            cached = validate_paths([folder], reg, period=period, cache=cache)
            again = validate_paths([folder], reg, period=period, cache=cache)
        fresh = validate_paths([folder], reg, period=period)
        assert _findings(cached) == _findings(fresh) == _findings(again), (reg.source, period)
    by_name = {fr.workbook: {f.code for f in fr.findings} for fr in fresh.files}
    assert "macro-workbook" in by_name["x.xlsm"] and "macro-workbook" in by_name["X.XLSM"]
    assert "wrong-file-type" in by_name["noext"] and "wrong-file-type" in by_name["z.xls"]


# -- the pre-scan judges what a sheet holds, not empty rows LibreOffice writes --


def _codes(report):
    return [(f.sheet, f.ref, f.code) for f in report.findings if f.severity == "error"]


@pytest.mark.soffice
def test_returns_edited_in_libreoffice_are_judged_on_their_content(tmp_path, register, good_dir):
    from tests.conftest import libreoffice_edit
    from derbyxl.validate import validate_file

    good = good_dir / "Governance-and-Finance_2024-25-Q4.xlsx"
    blank, again, gone = libreoffice_edit(
        # A blank row deleted below the table: LibreOffice writes an empty row 1,048,576.
        (good, tmp_path / "blank-deleted.xlsx", [{"sheet": "Measures", "do": "delete", "row": 30}]),
        # A row inserted in the table and deleted again.
        (good, tmp_path / "insert-delete.xlsx", [{"sheet": "Measures", "do": "insert", "row": 3}, {"sheet": "Measures", "do": "delete", "row": 3}]),
        # An item's row deleted: that item is missing, nothing else is wrong.
        (good, tmp_path / "item-deleted.xlsx", [{"sheet": "Measures", "do": "delete", "row": 3}]),
    )
    import zipfile

    with zipfile.ZipFile(blank) as zf:
        sheets = b"".join(zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/sheet"))
    assert b'<row r="1048576"' in sheets and b":J1048576" in sheets  # what LibreOffice really wrote
    assert _codes(validate_file(blank, register, period=Q4_SAMPLE)) == []
    assert _codes(validate_file(again, register, period=Q4_SAMPLE)) == []
    # An item's row deleted: that item is missing, nothing else is wrong.
    from openpyxl import load_workbook

    second = load_workbook(good, read_only=True)["Measures"].cell(3, 1).value
    assert _codes(validate_file(gone, register, period=Q4_SAMPLE)) == [("Measures", second, "missing-item")]


Q4_SAMPLE = Period.parse("2024-25-Q4")


# -- resubmissions: the later saved file wins a tie of sign-off dates --


def _set_saved(path: Path, when: str) -> None:
    """Rewrite docProps/core.xml's modified time, as the saving program would have."""
    import re
    import zipfile

    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>" + when.encode(), data)
            dst.writestr(info, data)
    tmp.replace(path)


def test_equal_sign_off_dates_go_to_the_later_saved_workbook(tmp_path, register, good_dir):
    from tests.faults import mutate, set_input

    folder = tmp_path / "returns"
    folder.mkdir()
    original = folder / "Governance-and-Finance_2024-25-Q4.xlsx"
    corrected = folder / "Governance-and-Finance_2024-25-Q4 v2 CORRECTED.xlsx"
    shutil.copyfile(good_dir / original.name, original)
    mutate(original, corrected, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", 6))
    _set_saved(original, "2025-04-22T09:00:00Z")
    _set_saved(corrected, "2025-04-22T15:30:00Z")
    os.utime(original, (2_000_000_000, 2_000_000_000))  # the original's file is newer (saved from email later)
    result = consolidate(folder, register, Q4_SAMPLE, tmp_path / "out")
    notes = {s.report.workbook: s.note for s in result.submissions}
    assert notes[corrected.name] == "used (same sign-off date; saved later)"
    assert notes[original.name] == f"superseded by {corrected.name}"
    assert {r["ref"]: r for r in result.rows}["LPD PM06"]["actual"] == 6
    from openpyxl import load_workbook

    ws = load_workbook(result.master, read_only=True)["Submissions"]
    assert "used (same sign-off date; saved later)" in [c for row in ws.iter_rows(values_only=True) for c in row]


def test_what_machines_leave_in_a_returns_folder_is_ignored_and_listed(tmp_path, good_dir, register):
    folder = tmp_path / "returns"
    folder.mkdir()
    shutil.copyfile(good_dir / "Governance-and-Finance_2024-25-Q4.xlsx", folder / "Governance-and-Finance_2024-25-Q4.xlsx")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600))  # an OLE file, as Windows writes it
    (folder / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Governance return.pdf").write_bytes(b"%PDF-1.7\n")
    (folder / "RE: Q4 return.eml").write_text("From: lead@example.gov.uk\n\nHere it is.")
    # ... but a workbook saved under a document's name is a workbook, and is checked.
    shutil.copyfile(good_dir / "Health-and-Adult-Care_2024-25-Q4.xlsx", folder / "Health return.pdf")
    r = run("validate", folder, "--period", "2024-25-Q4", "--history", tmp_path / "cache.sqlite")
    out = " ".join(r.stdout.split())
    assert r.returncode == 1, r.stdout  # the workbook named .pdf: a wrong-file-type finding
    assert "Ignored 4 file(s) that are not workbooks: Governance return.pdf, RE: Q4 return.eml, Thumbs.db, desktop.ini" in out
    assert "2 file(s): 1 valid" in out
    (folder / "Health return.pdf").unlink()
    r = run("validate", folder, "--period", "2024-25-Q4", "--history", tmp_path / "cache.sqlite")
    assert r.returncode == 0 and "1 file(s): 1 valid" in " ".join(r.stdout.split())


def test_validate_and_register_check_from_an_empty_folder_leave_it_empty(tmp_path, good_dir):
    from derbyxl.register import sample_register_path

    here = tmp_path / "empty"
    here.mkdir()
    r = run("validate", good_dir, "--period", "2024-25-Q4", cwd=here)
    assert r.returncode == 0, r.stderr
    r = run("register", "check", sample_register_path(), cwd=here)
    assert r.returncode == 0
    assert list(here.iterdir()) == []
    # The results were kept in the user's cache folder: the next run reads no file again.
    import os

    assert (Path(os.environ["XDG_CACHE_HOME"]) / "derbyxl" / "results.sqlite").exists()
