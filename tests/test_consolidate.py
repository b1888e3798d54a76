"""Consolidation: the master, its summary, submissions, history and direction of travel."""

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
import warnings
import zipfile

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from derbyxl.consolidate import consolidate
from derbyxl.demo import fill_return
from derbyxl.history import History
from derbyxl.periods import Period
from derbyxl.register import sample_answers_path
from derbyxl.template import write_templates

from .conftest import GOVERNANCE, KEY_EXCEPTIONS, Q4, run, summary_rows
from .faults import mutate, set_input

# Seed 004 prints N/A for LCT PM06's direction although both years have a value (33.6% twice):
# the rules say Same.
DOT_EXCEPTIONS = {"LCT PM06": "Same"}


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_workbook(path)


def _values(path, sheet: str | None = None) -> dict[str, list[tuple]]:
    """The values of a master's sheets (or of one), read as finance's pivot tables read them
    (read-only: a third of a full load's time)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl does not read sparklines, and says so
        wb = load_workbook(path, read_only=True)
        try:
            return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets if sheet in (None, ws.title)}
        finally:
            wb.close()


@pytest.fixture(scope="module")
def demo_master(tmp_path_factory, register, good_dir):
    out = tmp_path_factory.mktemp("outputs")
    return consolidate(good_dir, register, Q4, out)


@pytest.fixture(scope="module")
def demo_book(demo_master):
    """The demo master as openpyxl reads it, once for the tests that only look (0.5 s a load)."""
    return _load(demo_master.master)


def test_data_sheet_has_every_item_with_key_statuses(demo_book, register):
    ws = demo_book["Data"]
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    for col in ("Ref", "Kind", "Portfolio", "Theme", "Description", "Unit", "Actual", "Target", "Status", "DoT", "Previous actual", "Commentary", "Period", "Risk score"):
        assert col in header
    data = [dict(zip(header, r)) for r in rows[1:]]
    assert len(data) == 199 and {d["Ref"] for d in data} == set(register.by_ref)
    published = {r["Ref"]: r for r in csv.DictReader(open(sample_answers_path(), encoding="utf-8"))}
    for d in data:
        p = published[d["Ref"]]
        if d["Kind"] == "measure" and p["Published status"] in ("Blue", "Green", "Amber", "Red"):
            expected = KEY_EXCEPTIONS[d["Ref"]][0] if d["Ref"] in KEY_EXCEPTIONS else p["Published status"]
            assert d["Status"] == expected, d["Ref"]
        if d["Kind"] == "action":
            assert d["Status"] == p["Published status"]
        if d["Kind"] == "risk":
            assert d["Risk score"] == int(p["Published status"].split()[-1])
    assert ws.tables["PerformanceData"].ref == f"A1:{get_column_letter(len(header))}{len(data) + 1}"


def _hand_summary(theme):
    """Seed 004's per-theme figures computed by hand from the published table rows
    (with the KEY's colour where the council's differs: see test_sample.KEY_EXCEPTIONS)."""
    from derbyxl.register import load_register, sample_register_path

    reg = load_register(sample_register_path())
    published = {r["Ref"]: r for r in csv.DictReader(open(sample_answers_path(), encoding="utf-8"))}
    items = [i for i in reg.items if i.theme == theme]
    counts = {k: sum(i.kind == k for i in items) for k in ("measure", "action", "project", "risk")}
    rated = met = improved = with_dot = 0
    for i in items:
        if i.kind != "measure":
            continue
        status = published[i.ref]["Published status"]
        status = KEY_EXCEPTIONS.get(i.ref, (status,))[0]
        if status in ("Blue", "Green", "Amber", "Red"):
            rated += 1
            met += status in ("Blue", "Green")
        dot = DOT_EXCEPTIONS.get(i.ref, published[i.ref]["Published DoT"])
        if dot in ("Improving", "Same", "Deteriorating") and published[i.ref]["Actual"] and i.previous_actual is not None:
            with_dot += 1
            improved += dot == "Improving"
    acts = [published[i.ref]["Published status"] for i in items if i.kind == "action"]
    projs = [published[i.ref]["Published status"] for i in items if i.kind == "project"]
    return (
        counts,
        met / rated if rated else None,
        improved / with_dot if with_dot else None,
        with_dot,
        sum(a in ("Blue", "Green") for a in acts) / len(acts) if acts else None,
        sum(p in ("Green", "Green/Amber") for p in projs) / len(projs) if projs else None,
    )


@pytest.mark.parametrize("theme", ["A City of Growth", "A Green City", "A Resilient City", "A Vibrant City", "Working Smarter"])
def test_summary_per_theme_matches_hand_computation(demo_book, theme):
    counts, met, improved, compared, actions, projects = _hand_summary(theme)
    row = summary_rows(demo_book["Summary"])[theme]
    assert {k: row[k.title() + "s"] for k in ("measure", "action", "project", "risk")} == counts
    # Each percentage beside what it is out of: "% improved" counts only real comparisons.
    assert row["out of (% measures improved on last year)"] == compared
    assert row["% measures improved on last year"] == (pytest.approx(improved) if compared else "-")
    shares = ("% measures meeting target", "% measures improved on last year", "% actions delivered or on track", "% projects Green or Green/Amber")
    for caption, want in zip(shares, (met, improved, actions, projects)):
        got = row[caption]
        assert (got == "-") if want is None else got == pytest.approx(want)


def test_published_theme_counts(demo_book):
    """The counts seed 004 prints on its first page."""
    rows = {label: (r["Measures"], r["Actions"], r["Projects"], r["Risks"]) for label, r in summary_rows(demo_book["Summary"]).items()}
    assert rows["A City of Growth"] == (27, 9, 11, 1)
    assert rows["A Green City"] == (9, 12, 6, 1)
    assert rows["A Resilient City"] == (51, 21, 3, 3)
    assert rows["A Vibrant City"] == (2, 7, 8, 0)
    assert rows["Working Smarter"] == (5, 6, 4, 13)


def test_master_structure(demo_book, register):
    wb = demo_book
    assert wb.sheetnames[0] == "Summary" and wb.sheetnames[-4:] == ["Trends", "Exceptions", "Submissions", "Data"]
    assert len(wb.sheetnames) == 5 + len(register.portfolios)
    # Tab names whole words, unique (a portfolio's name cut at a word, no "and" hanging).
    assert "Children, Young People" in wb.sheetnames and len(set(wb.sheetnames)) == len(wb.sheetnames)
    assert all(len(n) <= 31 and not n.endswith((" and", ",")) for n in wb.sheetnames)
    assert wb["Summary"]._charts, "the summary has a native chart"
    for name in wb.sheetnames[1:-4] + ["Exceptions"]:
        rules = {f for cf in wb[name].conditional_formatting for r in cf.rules for f in r.formula}
        assert {'"Blue"', '"Green"', '"Amber"', '"Red"'} <= rules, name
    for name in wb.sheetnames:
        assert wb[name].freeze_panes, name
    assert wb.properties.title == "Performance master 2024/25 Q4"
    exceptions = [r for r in wb["Exceptions"].iter_rows(min_row=2, values_only=True)]
    assert exceptions and {r[4] for r in exceptions} <= {"Red", "Amber", "Amber/Red"}
    subs = list(wb["Submissions"].iter_rows(min_row=2, values_only=True))
    assert len(subs) == 9 and all(s[6] == "Yes" and len(s[2]) == 64 for s in subs)


def test_invalid_left_out_missing_listed_and_resubmission_wins(tmp_path, register, returns_copy):
    # Health and Adult Care sends nothing; Children sends a broken return; Governance sends two.
    (returns_copy / "Health-and-Adult-Care_2024-25-Q4.xlsx").unlink()
    children = "Children-Young-People-and-Skills_2024-25-Q4.xlsx"
    mutate(returns_copy / children, returns_copy / children, lambda wb: set_input(wb, "Actions", "GW 04", "Status", "Done"))
    later = returns_copy / "Governance-and-Finance_2024-25-Q4 v2.xlsx"

    def resubmit(wb):
        set_input(wb, "Measures", "LPD PM06", "Actual", 6)
        wb["Cover"]["C21"].value = __import__("datetime").date(2025, 4, 30)
    mutate(returns_copy / GOVERNANCE, later, resubmit)
    result = consolidate(returns_copy, register, Q4, tmp_path / "out")
    assert result.missing == ["Children, Young People and Skills", "Health and Adult Care"]
    assert result.invalid == ["Children, Young People and Skills"]
    notes = {s.report.workbook: s.note for s in result.submissions}
    assert notes[later.name] == "used (signed off latest)"
    assert notes[GOVERNANCE] == f"superseded by {later.name}"
    assert notes[children].startswith("left out")
    rows = {r["ref"]: r for r in result.rows}
    assert rows["LPD PM06"]["actual"] == 6 and rows["LPD PM06"]["source_file"] == later.name
    assert rows["GW 04"]["status"] == "No return"
    data = {r[0]: r for r in _values(result.master, "Data")["Data"][1:]}
    assert len(data) == 199
    strict = consolidate(returns_copy, register, Q4, tmp_path / "strict", strict=True)
    assert strict.master is None and not (tmp_path / "strict" / "master_2024-25-Q4.xlsx").exists()


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil.example","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"])
def test_formula_looking_commentary_arrives_as_text(tmp_path, register, returns_copy, text):
    mutate(returns_copy / GOVERNANCE, returns_copy / GOVERNANCE, lambda wb: set_input(wb, "Measures", "CM PM03", "Commentary", text))
    result = consolidate(returns_copy, register, Q4, tmp_path / "out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(result.master, read_only=True)
        cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row]
        wb.close()
    found = [c for c in cells if c.value == text]
    assert found, "the commentary is in the master"
    assert all(c.data_type == "s" for c in found)
    assert not any(isinstance(c.value, str) and c.data_type == "f" for c in cells)


def test_two_quarters_give_short_and_long_term_dot(tmp_path, register, answers):
    q3, q4 = Period.parse("2024-25-Q3"), Q4
    out = tmp_path / "out"
    for period, factor in ((q3, 1.0), (q4, None)):
        tdir, rdir = tmp_path / f"t{period.key}", tmp_path / f"r{period.key}"
        write_templates(register, period, tdir)
        ans = {ref: dict(a) for ref, a in answers.items()}
        if period == q3:
            # Q3: NEET rate 8%, worse than Q4's 7.4%; Ofsted 'good or better' 98%, better than Q4's 97%.
            ans["EHCS PM21"]["actual"] = 0.08
            ans["LI PM23c"]["actual"] = 0.98
        for t in tdir.glob("*.xlsx"):
            fill_return(t, ans, rdir / t.name)
        result = consolidate(rdir, register, period, out)
    rows = {r["ref"]: r for r in result.rows}
    # short term against Q3 (history), long term against last year (register fallback)
    assert (rows["EHCS PM21"]["dot_short"], rows["EHCS PM21"]["dot"]) == ("Improving", "Deteriorating")
    assert (rows["LI PM23c"]["dot_short"], rows["LI PM23c"]["dot"]) == ("Deteriorating", "Improving")
    with History(out / "history.sqlite") as h:
        assert h.periods() == ["2024-25-Q3", "2024-25-Q4"]
        assert h.latest_actuals(before=Period.parse("2025-26-Q1"))["EHCS PM21"] == pytest.approx(0.074)
        assert h.latest_actuals(before=q4)["EHCS PM21"] == pytest.approx(0.08)
        n = h.export_csv(tmp_path / "h.csv")
    assert n == 2 * 199


def test_rerun_replaces_quarter_and_gives_same_contents(tmp_path, register, good_dir):
    out = tmp_path / "out"
    a = consolidate(good_dir, register, Q4, out)
    first = _values(a.master, "Data")["Data"]
    b = consolidate(good_dir, register, Q4, out)
    second = _values(b.master, "Data")["Data"]
    assert first == second and len(first) == 200
    with History(out / "history.sqlite") as h:
        assert len(h.values_for(Q4)) == 199


KILLER = r"""
import sys, time, derbyxl.master as m
from derbyxl.register import load_register, sample_register_path
from derbyxl.consolidate import consolidate
real = m.write_master
def slow(path, register, result):
    real(path, register, result)
    print("written", flush=True)
    time.sleep(60)
m.write_master = slow
consolidate(sys.argv[1], load_register(sample_register_path()), "2024-25-Q4", sys.argv[2])
"""


def test_killed_consolidation_leaves_previous_master_and_history(tmp_path, register, good_dir):
    out = tmp_path / "out"
    first = consolidate(good_dir, register, Q4, out)
    before = first.master.read_bytes()
    with History(out / "history.sqlite") as h:
        history_before = h.values_for(Q4)
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(good_dir), str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert first.master.read_bytes() == before
    with History(out / "history.sqlite") as h:
        assert h.values_for(Q4) == history_before
    # The next run clears up and succeeds; the leftover temporary file is not a return.
    again = consolidate(good_dir, register, Q4, out)
    assert again.master == first.master


def test_the_master_is_reproducible_to_the_byte(tmp_path, register, good_dir, files_read):
    # The same returns and register at the same stamped time give the same master, byte for
    # byte: whether the files are read afresh or their results come from the cache, and in
    # whichever folder, so a master can be checked by making it again.
    import datetime as dt

    read = files_read
    at = dt.datetime(2025, 5, 1, 9, 30, tzinfo=dt.timezone.utc)
    first = consolidate(good_dir, register, Q4, tmp_path / "a", generated_at=at)
    assert len(read) == 9
    again = consolidate(good_dir, register, Q4, tmp_path / "a", generated_at=at)
    assert len(read) == 9  # every result from the cache
    time.sleep(1.1)  # a second later by the clock: nothing of the clock may get in
    elsewhere = consolidate(good_dir, register, Q4, tmp_path / "b", generated_at=at, use_cache=False)
    master = first.master.read_bytes()
    assert again.master.read_bytes() == master and elsewhere.master.read_bytes() == master
    later = consolidate(good_dir, register, Q4, tmp_path / "c", generated_at=at + dt.timedelta(hours=1))
    assert later.master.read_bytes() != master  # the stamp is in it: the check is not vacuous


def test_the_master_is_the_same_bytes_as_xlsxwriter_alone_writes(tmp_path, register, demo_master, monkeypatch):
    """derbyxl's worksheets (the quick formula path) and its one table of sparkline styles
    change how fast the master is written, not one byte of it."""
    import xlsxwriter.worksheet

    from derbyxl import xlsx_util
    from derbyxl.master import write_master

    write_master(tmp_path / "quick.xlsx", register, demo_master)
    monkeypatch.setattr(xlsx_util.Workbook, "worksheet_class", xlsxwriter.worksheet.Worksheet)
    styles = getattr(xlsxwriter.worksheet, "_get_sparkline_style", None)
    if styles is not None:  # xlsxwriter 3.3 on (older releases have no colour objects to build)
        assert hasattr(styles, "cache_info"), "the sparkline styles are built once"
        monkeypatch.setattr(xlsxwriter.worksheet, "_get_sparkline_style", styles.__wrapped__)
    write_master(tmp_path / "plain.xlsx", register, demo_master)
    assert (tmp_path / "quick.xlsx").read_bytes() == (tmp_path / "plain.xlsx").read_bytes()
    with zipfile.ZipFile(tmp_path / "quick.xlsx") as z:
        sheets = b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert b"<x14:sparkline>" in sheets and b"<formula>" in sheets  # both were written


def test_second_concurrent_consolidation_is_refused(tmp_path, register, good_dir):
    from derbyxl.consolidate import ConsolidationBusy, _lock

    out = tmp_path / "out"
    with _lock(out):
        with pytest.raises(ConsolidationBusy, match="another consolidation"):
            consolidate(good_dir, register, Q4, out)


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from derbyxl.consolidate import _lock
with _lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_lock_of_a_killed_consolidation_is_free(tmp_path, register, good_dir):
    from derbyxl.consolidate import ConsolidationBusy

    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConsolidationBusy, match="another consolidation is writing to"):
            consolidate(good_dir, register, Q4, out)
    finally:
        holder.kill()
        holder.wait()
    assert consolidate(good_dir, register, Q4, out).master.exists()


def test_disk_full_while_writing_leaves_previous_state(tmp_path, register, good_dir, monkeypatch):
    import errno

    import derbyxl.master as master

    out = tmp_path / "out"
    first = consolidate(good_dir, register, Q4, out)
    before = first.master.read_bytes()
    with History(out / "history.sqlite") as h:
        history_before = h.values_for(Q4)

    def full(path, register, result):
        with open(path, "wb") as fh:
            fh.write(b"PK partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(master, "write_master", full)
    with pytest.raises(OSError):
        consolidate(good_dir, register, Q4, out)
    assert first.master.read_bytes() == before
    assert [p.name for p in out.iterdir() if p.suffix == ".xlsx"] == [first.master.name]
    with History(out / "history.sqlite") as h:
        assert h.values_for(Q4) == history_before


def test_a_history_that_cannot_be_written_leaves_the_old_master_in_place(tmp_path, register, good_dir, monkeypatch):
    # The rows are inserted while the master is written; if they cannot be, the new master
    # must not take the old one's place (the two always agree).
    out = tmp_path / "out"
    first = consolidate(good_dir, register, Q4, out)
    before = first.master.read_bytes()

    def fails(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(History, "_insert", fails)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        consolidate(good_dir, register, Q4, out, replace=True)
    monkeypatch.undo()
    assert first.master.read_bytes() == before and not (out / "archive").exists()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".xlsx") == [first.master.name]
    with History(out / "history.sqlite") as h:
        assert [r.id for r in h.runs(Q4)] == [1]


def test_a_master_that_cannot_be_put_in_place_records_no_history(tmp_path, register, good_dir):
    # The rename of the new master over the old one can fail: on Windows while the old one is
    # open in Excel; anywhere when something else stands at its name (here, a folder). Then
    # the quarter is not recorded either, and the officer is told what to do.
    from derbyxl.consolidate import MasterNotWritten

    out = tmp_path / "out"
    blocker = out / "master_2024-25-Q4.xlsx"
    blocker.mkdir(parents=True)
    (blocker / "keep.txt").write_text("not derbyxl's")
    with pytest.raises(MasterNotWritten, match="close it") as caught:
        consolidate(good_dir, register, Q4, out)
    assert str(blocker) in str(caught.value)
    with History(out / "history.sqlite") as h:
        assert h.values_for(Q4) == {} and h.periods() == []
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".xlsx") == [blocker.name]
    assert (blocker / "keep.txt").read_text() == "not derbyxl's"
    r = run("consolidate", good_dir, "--period", "2024-25-Q4", "--out", out)
    assert r.returncode == 1 and "could not be written" in r.stderr
    assert "Traceback" not in r.stderr and "Unexpected" not in r.stderr


def test_history_busy_is_a_clear_message(tmp_path):
    import sqlite3

    from derbyxl.history import HistoryBusy

    path = tmp_path / "h.sqlite"
    History(path).close()
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with History(path, timeout=0.2) as h, pytest.raises(HistoryBusy, match="another consolidation"):
            h.record(Q4, "now", "fp", None, [], [])
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_completed_action_now_slipping_is_a_warning(tmp_path, register, returns_copy):
    from derbyxl.validate import validate_paths

    children = "Children-Young-People-and-Skills_2024-25-Q4.xlsx"
    mutate(returns_copy / children, returns_copy / children, lambda wb: set_input(wb, "Actions", "GW 03", "Status", "Major slippage"))
    report = validate_paths([returns_copy / children], register, period=Q4, previous={"GW 03": {"status": "Blue"}})
    codes = [(f.cell, f.code, f.severity) for f in report.findings]
    assert ("C2", "completed-now-slipping", "warning") in codes
    assert ("D2", "missing-commentary", "error") in codes


def test_summary_counts_every_kind_and_no_return(tmp_path, register, returns_copy):
    (returns_copy / "Health-and-Adult-Care_2024-25-Q4.xlsx").unlink()
    result = consolidate(returns_copy, register, Q4, tmp_path / "out")
    ws = _load(result.master)["Summary"]
    groups = summary_rows(ws)
    health = register.for_portfolio("Health and Adult Care")
    row = groups["Health and Adult Care"]
    # A portfolio with no valid return: every one of its items is counted, as No return.
    assert row["No return"] == len(health) and sum(row[s] for s in ("Blue", "Green", "Amber", "Red", "No target", "No data")) == 0
    # The status of every item by kind, risks included: a Red risk is on the Summary.
    rows = list(ws.iter_rows(values_only=True))
    at = next(i for i, r in enumerate(rows) if r[0] == "Every item, by kind and status")
    table = {r[0]: dict(zip(rows[at][5:], r[5:])) for r in rows[at + 1 : at + 6]}
    assert list(table) == ["Measures", "Actions", "Projects", "Risks", "All items"]
    by_status = {}
    for x in result.rows:
        by_status.setdefault(x["kind"], []).append(x["status"])
    for caption, kind in (("Measures", "measure"), ("Actions", "action"), ("Projects", "project"), ("Risks", "risk")):
        assert table[caption]["Total"] == len(by_status[kind])
        for status in set(by_status[kind]):
            assert table[caption][status] == by_status[kind].count(status), (kind, status)
    assert table["Risks"]["Red"] >= 1 and table["All items"]["No return"] == len(health) and table["All items"]["Total"] == 199


@pytest.mark.soffice
def test_master_template_and_annotated_copy_render_to_png(tmp_path, register, returns_copy, template_dir, demo_master):
    """The master, two templates and an annotated copy open in LibreOffice and print (PDF,
    then PNG pages to look at)."""
    from derbyxl.annotate import annotate_report
    from derbyxl.validate import validate_paths
    from derbyxl.spec import SIGN_OFF

    from .conftest import render_pngs, template_path

    good = returns_copy / GOVERNANCE

    def every_kind(wb):  # the findings a lead's return gets at its cells, all at once
        set_input(wb, "Measures", "CM PM03", "Actual", 95)  # percent-as-whole
        set_input(wb, "Measures", "CM PM10", "Actual", "about 96")  # not-a-number
        set_input(wb, "Measures", "LPD PM06", "Actual", None)  # missing-actual
        set_input(wb, "Measures", "LPD PM06", "Note", None)
        set_input(wb, "Risks", "SR47_CR47", "Likelihood", 7)  # invalid-risk-rating
        set_input(wb, "Risks", "SR7_CR6", "Impact", "high")  # not-a-number
        wb["Cover"][SIGN_OFF[0].cell].value = None  # missing-sign-off

    mutate(good, good, every_kind)
    report = validate_paths([returns_copy], register, period=Q4)
    codes = {f.code for f in report.files[[fr.workbook for fr in report.files].index(GOVERNANCE)].findings}
    assert {"percent-as-whole", "not-a-number", "missing-actual", "invalid-risk-rating", "missing-sign-off"} <= codes, codes
    (annotated,) = [p for p in annotate_report(report, tmp_path / "annotated") if "Governance" in p.name]
    out = tmp_path / "png"
    out.mkdir()
    pages = render_pngs(out, (demo_master.master, 1, 3), (template_path(template_dir, "Governance"), 1, 2), (template_path(template_dir, "Children"), 1, 1), (annotated, 1, 4))
    assert len(pages) >= 7 and (out / (demo_master.master.stem + ".pdf")).read_bytes().startswith(b"%PDF")
