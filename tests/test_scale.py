"""What makes a quarter of many returns fast, checked for being right: per-file results kept
by SHA-256, forked workers (and a worker that dies), the quick path of the pre-scan, the
history written alongside the master, and the master's layout for many portfolios."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import warnings

import pytest
from openpyxl import load_workbook

import derbyxl.validate as validate_module
from derbyxl.annotate import annotate_file
from derbyxl.cache import FileCache
from derbyxl.consolidate import consolidate
from derbyxl.guard import DEFAULT_LIMITS, Limits, _greater_than, _quick_scan, scan
from derbyxl.history import History, HistoryBusy
from derbyxl.record import Record
from derbyxl.register import Item, Register
from derbyxl.validate import validate_paths

from .conftest import GOVERNANCE, Q4
from .faults import mutate, set_input


def _summary(report):
    return (
        [f.as_dict() for f in report.findings],
        [(fr.workbook, fr.portfolio, fr.valid, fr.sha256, len(fr.rows)) for fr in report.files],
        sorted((r["ref"], r.get("actual"), r.get("status"), r.get("status_word"), tuple(sorted(r["cells"].as_dict().items()))) for fr in report.files for r in fr.rows),
    )


def test_second_run_reads_no_file_and_finds_the_same(tmp_path, register, returns_copy, files_read):
    mutate(returns_copy / GOVERNANCE, returns_copy / GOVERNANCE, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", "about 6"))
    with FileCache(tmp_path / "h.sqlite") as cache:
        first = validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
        seen = files_read
        seen.clear()
        second = validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
    assert seen == []
    assert _summary(second) == _summary(first)
    assert any(f.code == "not-a-number" for f in second.findings)


def test_a_changed_file_or_register_is_checked_again(tmp_path, register, returns_copy, files_read):
    with FileCache(tmp_path / "h.sqlite") as cache:
        validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
        mutate(returns_copy / GOVERNANCE, returns_copy / GOVERNANCE, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", 7))
        seen = files_read
        seen.clear()
        report = validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
        assert seen == [GOVERNANCE]
        assert next(r for fr in report.files for r in fr.rows if r["ref"] == "LPD PM06")["actual"] == 7
        # The same items, built in memory: another fingerprint, so nothing is reused.
        again = Register(list(register.items))
        assert again.fingerprint != register.fingerprint
        seen.clear()
        validate_paths([returns_copy], again, period=Q4, cache=cache, workers=1)
        assert len(seen) == 9
        # Other limits can change what a file yields: checked again too.
        seen.clear()
        validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1, limits=Limits(max_rows=5000))
        assert len(seen) == 9


def test_a_stage_result_comes_back_from_its_bytes_whole_and_renamed(register, returns_copy):
    # What the cache keeps and a worker hands back: one file's findings and records.
    path = returns_copy / GOVERNANCE
    mutate(path, path, lambda wb: set_input(wb, "Measures", "LPD PM06", "Actual", "lots"))
    report, records = validate_module.check_file(path, GOVERNANCE, register)
    assert any(r["bad"] for r in records) and any(not r["bad"] for r in records)
    blob = validate_module.encode_stage(report, records)
    again, back = validate_module.decode_stage(blob, "renamed.xlsx", "/elsewhere/renamed.xlsx")

    assert (again.workbook, again.path) == ("renamed.xlsx", "/elsewhere/renamed.xlsx")
    for name in ("portfolio", "period", "signed_by", "signed_date", "items"):
        assert getattr(again, name) == getattr(report, name)
    assert [f.as_dict() | {"workbook": GOVERNANCE} for f in again.findings] == [f.as_dict() for f in report.findings]
    assert any(f.code == "not-a-number" and f.cell for f in again.findings)
    assert len(back) == len(records) == report.items
    others = [f.name for f in dataclasses.fields(Record) if f.name not in ("source_file", "portfolio", "bad")]
    for original, decoded in zip(records, back):
        assert decoded.source_file == "renamed.xlsx" and decoded.portfolio == report.portfolio
        assert decoded.cells == original.cells and decoded.cells.get("actual") == original.cells.get("actual")
        assert set(decoded.bad) == set(original.bad)
        assert [decoded[k] for k in others] == [original[k] for k in others]
    assert any(r.status for r in back) and any(r.commentary for r in back)
    # Texts and the empty set of bad columns come back shared, not copied for every record.
    assert len({id(r.bad) for r in back if not r.bad}) == 1
    assert len({id(r.sheet) for r in back}) == len({id(r.letters) for r in back}) == len({r.sheet for r in back})
    # Each ref is the register's own text when the register is given.
    assert all(r.ref is register.by_ref[r.ref].ref for r in validate_module.decode_stage(blob, "x.xlsx", "/x", register)[1])
    assert not any(r.ref is register.by_ref[r.ref].ref for r in back)
    # The flag that says whether it may be kept survives too.
    assert validate_module._cacheable(blob)


def test_a_damaged_cache_means_checking_again_not_failing(tmp_path, register, returns_copy, files_read):
    db = tmp_path / "h.sqlite"
    with FileCache(db) as cache:
        first = validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE file_check SET payload = x'31deadbeef'")
    seen = files_read
    seen.clear()
    with FileCache(db) as cache:
        second = validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
    assert len(seen) == 9 and _summary(second) == _summary(first)
    # A cache that is not a database at all is no cache, and no failure either.
    # A cache table of another layout is replaced, not a failure.
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE file_check")
        con.execute("CREATE TABLE file_check (sha256 TEXT, register_fingerprint TEXT)")
    with FileCache(db) as cache:
        assert _summary(validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)) == _summary(first)
        assert cache.db.execute("SELECT COUNT(*) FROM file_check").fetchone()[0] == 9
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with FileCache(junk) as cache:
        assert _summary(validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)) == _summary(first)


def test_results_are_kept_a_few_files_at_a_time_and_all_are_kept(tmp_path, register, returns_copy, files_read, monkeypatch):
    monkeypatch.setattr(validate_module, "_KEEP_AT_ONCE", 2)
    puts = []
    real = FileCache.put_many
    monkeypatch.setattr(FileCache, "put_many", lambda self, blobs, context: puts.append(len(blobs)) or real(self, blobs, context))
    db = tmp_path / "h.sqlite"
    with FileCache(db) as cache:
        first = validate_paths([returns_copy], register, period=Q4, cache=cache)
    assert puts == [2, 2, 2, 2, 1] and len(files_read) == 9
    files_read.clear()
    with FileCache(db) as cache:
        assert _summary(validate_paths([returns_copy], register, period=Q4, cache=cache)) == _summary(first)
    assert files_read == []


def test_results_of_the_moment_are_not_kept(tmp_path, register, returns_copy):
    with FileCache(tmp_path / "h.sqlite") as cache:
        report = validate_paths([returns_copy], register, period=Q4, cache=cache, limits=Limits(max_seconds=0), workers=1)
        assert {f.code for f in report.findings} >= {"time-limit"}
        assert cache.db.execute("SELECT COUNT(*) FROM file_check").fetchone()[0] == 0


def test_consolidate_uses_what_validate_kept(tmp_path, register, returns_copy, files_read):
    out = tmp_path / "out"
    with FileCache(out / "history.sqlite") as cache:
        validate_paths([returns_copy], register, period=Q4, cache=cache, workers=1)
    seen = files_read
    seen.clear()
    result = consolidate(returns_copy, register, Q4, out)
    assert seen == [] and result.master.exists() and not result.missing
    seen.clear()
    consolidate(returns_copy, register, Q4, out, use_cache=False)
    assert len(seen) == 9


def _far_cell(src, dst):
    """``src`` with a cell at XFD1048576, on which python-calamine cannot allocate the grid
    and aborts the process reading it (the pre-scan refuses it under the default limits)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "xl/worksheets/sheet2.xml":
                data = data.replace(b"</sheetData>", b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>')
            out.writestr(info, data)
    return dst


#: Limits under which the pre-scan lets a far cell through, to the reader.
LOOSE = Limits(max_rows=2_000_000, max_cols=20_000, max_cells=10**12)


@pytest.mark.parametrize("killer", ["0-first.xlsx", "zz-last.xlsx"])
def test_a_file_that_kills_its_reader_is_named_and_the_rest_are_read(tmp_path, register, returns_copy, killer):
    _far_cell(returns_copy / GOVERNANCE, returns_copy / killer)
    for i in range(6):  # enough files for several rounds of work
        shutil.copy(returns_copy / GOVERNANCE, returns_copy / f"copy-{i}.xlsx")
    report = validate_paths([returns_copy], register, period=Q4, workers=2, limits=LOOSE)
    crashed = next(fr for fr in report.files if fr.workbook == killer)
    assert [f.code for f in crashed.findings] == ["reader-crashed"] and "signal 6" in crashed.findings[0].message
    others = [fr for fr in report.files if fr.workbook != killer]
    assert len(others) == 15 and all(fr.rows for fr in others)
    assert all(fr.valid for fr in others if not fr.workbook.startswith("copy-"))


def test_a_reader_crash_costs_only_its_file_even_alone(tmp_path, register, returns_copy):
    # A council's quarter is nine returns, a portal's upload one: each file is still read in
    # a worker, so a reader that aborts on it is a finding, not the end of the command.
    _far_cell(returns_copy / GOVERNANCE, returns_copy / "killer.xlsx")
    report = validate_paths([returns_copy], register, period=Q4, workers=2, limits=LOOSE)
    crashed = next(fr for fr in report.files if fr.workbook == "killer.xlsx")
    assert [f.code for f in crashed.findings] == ["reader-crashed"]
    assert sum(fr.valid for fr in report.files) == 9 and all(fr.rows for fr in report.files if fr.valid)
    # A file that crashed one reader is not opened by another (openpyxl) for an annotated copy.
    assert annotate_file(crashed, tmp_path / "annotated") is None and not (tmp_path / "annotated").exists()
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(returns_copy / "killer.xlsx", alone / "killer-alone.xlsx")
    single = validate_module.validate_file(alone / "killer-alone.xlsx", register, period=Q4, workers=1, limits=LOOSE)
    assert [f.code for f in single.findings] == ["reader-crashed"]
    # ...and a good file read alone gives what the same file gives among others.
    fine = validate_module.validate_file(returns_copy / GOVERNANCE, register, period=Q4, workers=1)
    among = next(fr for fr in report.files if fr.workbook == GOVERNANCE)
    assert fine.valid and [f.as_dict() for f in fine.findings] == [f.as_dict() for f in among.findings]
    assert fine.rows == among.rows and len(fine.rows) == fine.items > 0


def test_a_real_reader_abort_costs_its_file_here_or_from_a_thread(tmp_path, register, good_dir):
    # calamine really aborting (SIGABRT) on a far cell: never in this process, whether the
    # library is called from the main thread or, as a web server calls it, from another.
    import threading

    good = good_dir / GOVERNANCE
    far = _far_cell(good, tmp_path / "far.xlsx")

    def errors(report):
        return [f.code for f in report.findings if f.severity == "error"]

    home = validate_module.validate_file(good, register, workers=1)
    assert home.valid and len(home.rows) == 9
    pair = validate_paths([good, far], register, limits=LOOSE, workers=2)
    assert [[r.workbook, errors(r)] for r in pair.files] == [[GOVERNANCE, []], ["far.xlsx", ["reader-crashed"]]]
    seen = {}

    def in_a_thread():
        ok = validate_module.validate_file(good, register, workers=2)
        seen["thread"] = [ok.valid, ok.rows == home.rows]
        seen["thread far"] = errors(validate_module.validate_file(far, register, workers=2, limits=LOOSE))
        many = validate_paths([good_dir, far], register, limits=LOOSE, workers=2)
        seen["thread many"] = sorted([r.workbook, errors(r), len(r.rows)] for r in many.files)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(120)
    assert seen["thread"] == [True, True] and seen["thread far"] == ["reader-crashed"]
    # Many files from a thread: the one that aborts its reader is named, the nine others read.
    many = seen["thread many"]
    assert [w for w, e, _ in many if e] == ["far.xlsx"] and next(e for w, e, _ in many if e) == ["reader-crashed"]
    assert len(many) == 10 and all(n > 0 for w, e, n in many if not e)


def test_quick_and_careful_scans_agree(good_dir):
    import zipfile

    from derbyxl.guard import _CELL, _ROW

    path = good_dir / GOVERNANCE
    with zipfile.ZipFile(path) as zf:
        sheets = [zf.read(n) for n in zf.namelist() if n.startswith("xl/worksheets/sheet")]
    for xml in sheets:
        quick = _quick_scan(xml, DEFAULT_LIMITS)
        assert quick is not None, "derbyxl's own templates take the quick path"
        n_rows, cells, errors = quick
        assert cells == len(_CELL.findall(xml)) and n_rows == len(_ROW.findall(xml))
        # The same sheet with a namespace prefix, as some writers emit, takes the careful path.
        prefixed = xml.replace(b"<c ", b"<x:c ").replace(b"</c>", b"</x:c>").replace(b"<row ", b"<x:row ")
        assert _quick_scan(prefixed, DEFAULT_LIMITS) is None
    # Error values are found on the quick path too.
    xml = b'<sheetData><row r="1"><c r="A1" t="e"><v>#REF!</v></c><c r="CV7"/></row><row r="20000"/></sheetData>'
    assert _quick_scan(xml, DEFAULT_LIMITS) == (2, 2, {"A1"})
    # Anything at or beyond the limits, or written oddly, is left to the careful scan.
    for far in (b'<c r="CW7"/>', b'<c r="AAA1"/>', b'<c r="A20001"/>', b'<c r="XFD1048576"/>', b'<row r="20001"/>', b'<c r="A020001"/>', b'<row r="01"/>', b'<c r="a1"/>'):
        assert _quick_scan(xml.replace(b"</sheetData>", far + b"</sheetData>"), DEFAULT_LIMITS) is None, far
    # Limits whose grid could exceed the cell limit need the highest row and column: careful.
    assert _quick_scan(xml, Limits(max_rows=1_000_000, max_cols=16_384)) is None


@pytest.mark.parametrize("limit", [0, 1, 9, 10, 99, 100, 101, 20_000, 19_999, 1_048_576])
def test_numbers_above_a_limit_are_matched_exactly(limit):
    import re

    above = re.compile(f"(?:{_greater_than(limit, '0123456789', 8)})$")
    for n in [*range(min(limit + 3000, 30_000)), limit - 1, limit, limit + 1, 99_999_999]:
        if n >= 0:
            assert bool(above.match(str(n))) == (n > limit), n


@pytest.mark.parametrize("limit", [1, 26, 27, 100, 702, 703, 16_384])
def test_columns_above_a_limit_are_matched_exactly(limit):
    import re

    from xlsxwriter.utility import xl_col_to_name

    above = re.compile(f"(?:{_greater_than(limit, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 3)})$")
    for col in range(1, 16_385):
        assert bool(above.match(xl_col_to_name(col - 1))) == (col > limit), col


def test_far_cells_are_refused_on_either_path(tmp_path, good_dir):
    import zipfile

    from .hostile.corpus import MEASURES_PART, rezip

    src = (good_dir / GOVERNANCE).read_bytes()
    for far in (b'<c r="XFD1048576"><v>1</v></c>', b'<x:c r="XFD1048576"><v>1</v></x:c>'):
        bad = tmp_path / "far.xlsx"
        bad.write_bytes(rezip(src, {MEASURES_PART: lambda x, far=far: x.replace(b"</row></sheetData>", far + b"</row></sheetData>", 1)}))
        with zipfile.ZipFile(bad) as zf:
            assert far in zf.read(MEASURES_PART)
        res = scan(bad)
        assert not res.ok and [f.code for f in res.findings] == ["sheet-too-large"]


def test_history_recorded_alongside_commits_only_with_the_master(tmp_path):
    path = tmp_path / "h.sqlite"
    values = [{"ref": "A 1", "kind": "measure", "portfolio": "P", "theme": "T", "actual": 1.0, "status": "Green", "status_word": None, "score": None, "commentary": None, "note": None, "source_file": "f.xlsx", "sha256": "x"}]
    with History(path) as h:
        with pytest.raises(RuntimeError, match="master failed"):
            with h.recording(Q4, "now", "fp", "m.xlsx", values, []):
                raise RuntimeError("master failed")
        assert h.values_for(Q4) == {} and h.periods() == []
        # Rows that cannot be inserted: wait() says so before the block would put a master
        # in place, and nothing is recorded.
        placed = []
        with pytest.raises(sqlite3.Error):
            with h.recording(Q4, "now", "fp", "m.xlsx", [{**values[0], "actual": object()}], []) as recording:
                recording.wait()
                placed.append("master")
        assert placed == [] and h.values_for(Q4) == {} and h.periods() == []
        with h.recording(Q4, "now", "fp", "m.xlsx", values, []):
            pass
        assert h.values_for(Q4)["A 1"]["actual"] == 1.0
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with History(path, timeout=0.2) as h, pytest.raises(HistoryBusy, match="another consolidation"):
            with h.recording(Q4, "later", "fp", "m.xlsx", values, []):
                pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_items_loaded_quickly_equal_items_built_normally(register):
    for item in register.items:
        assert item == Item(**{name: getattr(item, name) for name in Item._fields})
        assert hash(item) == hash(Item(**{name: getattr(item, name) for name in Item._fields}))


def test_many_portfolios_master_has_no_sheet_each(tmp_path, register, good_dir, monkeypatch):
    import derbyxl.master as master

    monkeypatch.setattr(master, "MAX_PORTFOLIO_SHEETS", 3)
    result = consolidate(good_dir, register, Q4, tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(result.master)
    assert wb.sheetnames == ["Summary", "Exceptions", "Submissions", "Data"]
    notes = [c.value for row in wb["Summary"].iter_rows(max_row=5) for c in row if isinstance(c.value, str)]
    assert any("filter the Data sheet by Portfolio" in n for n in notes)
    assert wb["Data"].max_row == 200


def test_history_export_keeps_formula_looking_text_as_text(tmp_path):
    import csv

    values = [
        {"ref": "A 1", "kind": "measure", "portfolio": "P", "theme": "T", "actual": -2.5, "status": "Red", "status_word": None, "score": None,
         "commentary": '=HYPERLINK("http://evil.example","click")', "note": "-2+3", "source_file": "f.xlsx", "sha256": "x"},
        {"ref": "A 2", "kind": "measure", "portfolio": "P", "theme": "T", "actual": 3.0, "status": "Green", "status_word": None, "score": None,
         "commentary": "Fine – café", "note": None, "source_file": "f.xlsx", "sha256": "y"},
    ]
    with History(tmp_path / "h.sqlite") as h:
        h.record(Q4, "now", "fp", "m.xlsx", values, [])
        assert h.export_csv(tmp_path / "h.csv") == 2
    rows = list(csv.DictReader(open(tmp_path / "h.csv", encoding="utf-8-sig")))
    assert rows[0]["commentary"] == '\'=HYPERLINK("http://evil.example","click")' and rows[0]["note"] == "'-2+3"
    assert rows[0]["actual"] == "-2.5" and rows[1]["commentary"] == "Fine – café" and rows[1]["actual"] == "3.0"


def test_hostile_files_among_good_ones_cost_only_themselves(returns_copy, register):
    # Every hostile file of the hostile suite beside the nine good returns: each gets the
    # finding it gets alone, and the good ones are read as they are alone, with one worker
    # or two.
    from .hostile.corpus import HOSTILE, _build

    good = (returns_copy / GOVERNANCE).read_bytes()
    for kind in HOSTILE:
        name, data = _build(kind, good)
        (returns_copy / f"{kind}-{name}").write_bytes(data)
    one = validate_paths([returns_copy], register, period=Q4, workers=1)
    two = validate_paths([returns_copy], register, period=Q4, workers=2)
    assert _summary(one) == _summary(two)
    assert sum(fr.valid for fr in two.files) == 9 and len(two.files) == 9 + len(HOSTILE)
    assert set(HOSTILE.values()) <= {f.code for f in two.findings}
    for fr in two.files:
        if not fr.valid:
            alone = validate_module.validate_file(returns_copy / fr.workbook, register, period=Q4)
            assert [f.code for f in alone.findings] == [f.code for f in fr.findings], fr.workbook


def test_migrate_reads_the_old_return_in_a_worker(tmp_path, register, good_dir):
    from derbyxl.migrate import MigrateError, migrate

    far = _far_cell(good_dir / GOVERNANCE, tmp_path / "far.xlsx")
    with pytest.raises(MigrateError, match=r"far.xlsx cannot be read: the process reading it stopped \(signal 6\)"):
        migrate(far, register, "2025-26-Q1", tmp_path / "new.xlsx", limits=LOOSE)
    assert not (tmp_path / "new.xlsx").exists()
    m = migrate(good_dir / GOVERNANCE, register, "2025-26-Q1", tmp_path / "new.xlsx")
    assert len(m.carried) == 9 and (tmp_path / "new.xlsx").exists()
