"""Validation: the good returns pass; each mistake an officer makes is reported with the right
code at the right cell, and the good returns beside it still pass."""

import json
import zipfile

import pytest

from derbyxl.demo import fill_return
from derbyxl.findings import CATALOGUE, FIELDS, flatten
from derbyxl.guard import sheet_parts
from derbyxl.periods import Period
from derbyxl.template import write_template
from derbyxl.validate import validate_file, validate_paths

from .conftest import GOVERNANCE, Q4
from .faults import mutate, row_of, set_input

CHILDREN = "Children-Young-People-and-Skills_2024-25-Q4.xlsx"


def test_good_returns_have_no_errors(register, good_dir):
    report = validate_paths([good_dir], register, period=Q4)
    assert report.stats["files"] == 9
    assert report.valid, [f for f in report.findings if f.severity == "error"]
    assert sum(len(fr.rows) for fr in report.files) == 199
    assert {f.code for f in report.findings} <= {"large-change"}


def _set(sheet, ref, caption, value):
    return lambda wb: set_input(wb, sheet, ref, caption, value)


def _delete_row(sheet, ref):
    def change(wb):
        ws = wb[sheet]
        ws.delete_rows(row_of(ws, ref))
    return change


def _rename(old, new):
    def change(wb):
        wb[old].title = new
    return change


# (file to break, change, expected (sheet, cell, code) findings that are errors)
CASES = {
    "text-in-number": (CHILDREN, _set("Measures", "EHCS PM29", "Actual", "about 56"), [("Measures", "G4", "not-a-number")]),
    "percent-as-whole": (CHILDREN, _set("Measures", "EHCS PM29", "Actual", 56), [("Measures", "G4", "percent-as-whole")]),
    "red-without-commentary": (CHILDREN, _set("Measures", "EHCS PM21", "Commentary", None), [("Measures", "I2", "missing-commentary")]),
    "status-not-in-list": (CHILDREN, _set("Actions", "GW 04", "Status", "Done"), [("Actions", "C3", "invalid-status")]),
    "missing-status": (CHILDREN, _set("Actions", "GW 04", "Status", None), [("Actions", "C3", "missing-status")]),
    "likelihood-5": (GOVERNANCE, _set("Risks", "SR7_CR6", "Likelihood", 5), [("Risks", "C3", "invalid-risk-rating")]),
    "likelihood-half": (GOVERNANCE, _set("Risks", "SR7_CR6", "Impact", 2.5), [("Risks", "D3", "invalid-risk-rating")]),
    "missing-actual": (GOVERNANCE, _set("Measures", "CM PM10", "Actual", None), [("Measures", "G3", "missing-actual")]),
    "date-in-number": (GOVERNANCE, _set("Measures", "LPD PM06", "Actual", __import__("datetime").datetime(2025, 3, 8)), [("Measures", "G4", "date-not-number")]),
    "unit-mismatch": (GOVERNANCE, _set("Measures", "LPD PM06", "Actual", "8%"), [("Measures", "G4", "unit-mismatch")]),
    "deleted-row": (GOVERNANCE, _delete_row("Measures", "CM PM10"), [("Measures", None, "missing-item")]),
    "renamed-sheet": (GOVERNANCE, _rename("Risks", "Risks (2)"), [("Risks", None, "missing-sheet")] + [("Risks", None, "missing-item")] * 6),
    "renamed-column": (GOVERNANCE, lambda wb: setattr(wb["Measures"]["G1"], "value", "Value"), [("Measures", "A1", "missing-column"), ("Measures", None, "missing-actual")] ),
    "duplicate-row": (GOVERNANCE, lambda wb: [wb["Measures"].cell(5, c).__setattr__("value", wb["Measures"].cell(2, c).value) for c in range(1, 10)], [("Measures", "A5", "duplicate-item")]),
    "unknown-item": (GOVERNANCE, lambda wb: setattr(wb["Measures"]["A5"], "value", "XX 99"), [("Measures", "A5", "unknown-item")]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_mistake_is_reported_where_it_is(case, tmp_path, register, returns_copy):
    name, change, expected = CASES[case]
    bad = tmp_path / f"bad-{name}"
    mutate(returns_copy / name, bad, change)
    (returns_copy / name).unlink()
    bad.rename(returns_copy / name)
    report = validate_paths([returns_copy], register, period=Q4)
    broken = next(fr for fr in report.files if fr.workbook == name)
    errors = [f for f in broken.findings if f.severity == "error"]
    got = sorted(((f.sheet, f.cell, f.code) for f in errors), key=str)
    want = sorted(expected, key=str)
    if case == "renamed-column":
        # Without the Actual column every measure lacks an actual: one finding each, no cell.
        assert got[0] == ("Measures", "A1", "missing-column") and {g[2] for g in got[1:]} == {"missing-actual"}
    else:
        assert got == want
    others = [fr for fr in report.files if fr.workbook != name]
    assert len(others) == 8 and all(fr.valid for fr in others)


def test_wrong_period(tmp_path, register, answers, returns_copy):
    q3 = write_template(register, "Governance and Finance", Period.parse("2024-25-Q3"), tmp_path)
    fill_return(q3.path, answers, returns_copy / q3.path.name)
    report = validate_paths([returns_copy], register, period=Q4)
    fr = next(f for f in report.files if f.workbook == q3.path.name)
    assert flatten(fr.findings) == [("Cover", "C4", "wrong-period")]  # the period cell, highlighted in the annotated copy
    assert "this is the 2024/25 Q3 return; use the 2024/25 Q4 template you were sent" in fr.findings[0].message
    # Without --period, the latest period claimed is expected: the stale return still stands out.
    report = validate_paths([returns_copy], register)
    assert [f.code for f in report.findings if f.severity == "error"] == ["wrong-period"]


def test_who_has_not_returned(tmp_path, register, answers, returns_copy):
    # The quarter so far: Governance and Finance sent last quarter's template, Health and
    # Adult Care nothing, Housing a file that cannot be read (so whose it is cannot be told),
    # and Children's return has an error (it has still been returned).
    (returns_copy / GOVERNANCE).unlink()
    (returns_copy / "Health-and-Adult-Care_2024-25-Q4.xlsx").unlink()
    housing = returns_copy / "Housing-Strategic-Planning-and-Regulatory-Services_2024-25-Q4.xlsx"
    housing.write_bytes(b"PK\x03\x04 not really")  # unreadable: its portfolio cannot be told
    q3 = write_template(register, "Governance and Finance", Period.parse("2024-25-Q3"), tmp_path)
    fill_return(q3.path, answers, returns_copy / q3.path.name)
    children = returns_copy / CHILDREN
    mutate(children, children, lambda wb: set_input(wb, "Measures", "EHCS PM21", "Actual", "lots"))
    report = validate_paths([returns_copy], register, period=Q4)
    assert report.period == "2024-25-Q4"
    assert not next(fr for fr in report.files if fr.workbook == CHILDREN).valid
    assert report.not_returned(register.portfolios) == [
        p for p in register.portfolios if p in ("Governance and Finance", "Health and Adult Care", "Housing, Strategic Planning and Regulatory Services")
    ]
    # Without a period given, the latest one claimed is the quarter checked.
    assert validate_paths([returns_copy], register).period == "2024-25-Q4"
    assert validate_paths([returns_copy / q3.path.name], register).not_returned(["Governance and Finance"]) == []


def test_two_files_for_one_portfolio_are_both_told(tmp_path, register, answers, returns_copy):
    # A corrected return sent beside the first: both stay valid, each says which other file
    # returns its portfolio (consolidate uses one). Last quarter's file is not a duplicate.
    copy = returns_copy / "Governance-and-Finance v2.xlsx"
    copy.write_bytes((returns_copy / GOVERNANCE).read_bytes())
    q3 = write_template(register, "Governance and Finance", Period.parse("2024-25-Q3"), tmp_path)
    fill_return(q3.path, answers, returns_copy / q3.path.name)
    report = validate_paths([returns_copy], register, period=Q4)
    dup = {fr.workbook: [f.message for f in fr.findings if f.code == "duplicate-return"] for fr in report.files}
    suffix = " (Governance and Finance, 2024/25 Q4)"
    assert dup[GOVERNANCE] == ["Another file returns the same portfolio for this quarter: Governance-and-Finance v2.xlsx" + suffix]
    assert dup[copy.name] == [f"Another file returns the same portfolio for this quarter: {GOVERNANCE}" + suffix]
    assert sum(bool(v) for v in dup.values()) == 2
    files = {fr.workbook: fr for fr in report.files}
    assert files[GOVERNANCE].valid and files[copy.name].valid
    assert [f.code for f in files[q3.path.name].findings if f.severity == "error"] == ["wrong-period"]


def test_a_damaged_sheet_is_named(tmp_path, register, good_dir):
    # A sheet whose XML calamine refuses (a cell with an element no cell has) makes the whole
    # file unreadable; the finding says which sheet, so the officer knows where to look.
    src = good_dir / GOVERNANCE
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as out:
        part = sheet_parts(z, set(z.namelist()))["Measures"]
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename == part:
                data = data.replace(b"</sheetData>", b'<row r="300"><c r="A300"><q/></c></row></sheetData>')
            out.writestr(info, data)
    fr = validate_file(damaged, register, period=Q4)
    assert [(f.sheet, f.code) for f in fr.findings] == [("Measures", "corrupt-file")]
    assert "sheet 'Measures' is damaged or written in a way the reader does not follow" in fr.findings[0].message and not fr.rows
    # In plain words: the reader's own text only with --debug (and a cached result without
    # it is not reused then).
    assert "calamine" not in fr.findings[0].message and "Error" not in fr.findings[0].message.split(": ", 1)[1]


def test_the_readers_own_words_only_with_debug(tmp_path, register, good_dir, monkeypatch):
    damaged = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(good_dir / GOVERNANCE) as z, zipfile.ZipFile(damaged, "w", zipfile.ZIP_DEFLATED) as out:
        part = sheet_parts(z, set(z.namelist()))["Measures"]
        for info in z.infolist():
            data = z.read(info.filename)
            out.writestr(info, data.replace(b"</sheetData>", b'<row r="300"><c r="A300"><q/></c></row></sheetData>') if info.filename == part else data)
    from derbyxl.cache import FileCache

    with FileCache(tmp_path / "cache.sqlite") as cache:
        plain = validate_file(damaged, register, period=Q4, cache=cache).findings[0].message
        monkeypatch.setenv("DERBYXL_DEBUG", "1")
        debug = validate_file(damaged, register, period=Q4, cache=cache, workers=1).findings[0].message
    assert "python-calamine" not in plain and "(python-calamine: " in debug


def test_outdated_template(tmp_path, register, good_dir):
    def change(wb):
        ws = wb["_derbyxl"]
        for row in ws.iter_rows():
            if row[0].value == "format_version":
                row[1].value = "1"
    path = mutate(good_dir / GOVERNANCE, tmp_path / GOVERNANCE, change)
    assert flatten(validate_file(path, register).findings) == [(None, None, "outdated-template")]


def test_not_a_return(tmp_path, register, good_dir):
    path = mutate(good_dir / GOVERNANCE, tmp_path / "copy.xlsx", lambda wb: wb.remove(wb["_derbyxl"]))
    assert [f.code for f in validate_file(path, register).findings] == ["not-a-return"]


@pytest.mark.parametrize(
    "name, content, code",
    [
        ("return.xlsm", None, "macro-workbook"),
        ("truncated.xlsx", "truncate", "corrupt-file"),
        ("empty.xlsx", b"", "file-empty"),
        ("data.csv", b"Ref,Actual\nCM PM03,93\n", "wrong-file-type"),
        ("renamed.xlsx", b"Ref,Actual\nCM PM03,93\n", "wrong-file-type"),
    ],
)
def test_broken_files(tmp_path, register, good_dir, returns_copy, name, content, code):
    src = (good_dir / GOVERNANCE).read_bytes()
    if content is None:
        content = src
    elif content == "truncate":
        content = src[: len(src) // 2]
    (returns_copy / name).write_bytes(content)
    report = validate_paths([returns_copy], register, period=Q4)
    fr = next(f for f in report.files if f.workbook == name)
    assert [f.code for f in fr.findings] == [code]
    assert fr.findings[0].message and fr.findings[0].hint
    assert sum(f.valid for f in report.files) == 9


def test_typed_values_are_normalised_and_said(tmp_path, register, good_dir):
    def change(wb):
        set_input(wb, "Measures", "CM PM03", "Actual", "93.25%")
        set_input(wb, "Measures", "LPD PM06", "Actual", "8")
    path = mutate(good_dir / GOVERNANCE, tmp_path / GOVERNANCE, change)
    fr = validate_file(path, register)
    assert fr.valid
    assert [(f.cell, f.code) for f in fr.findings] == [("G2", "value-normalised"), ("G4", "value-normalised")]
    assert "'93.25%' was read as 93.25%" in fr.findings[0].message
    row = next(r for r in fr.rows if r["ref"] == "CM PM03")
    assert row["actual"] == pytest.approx(0.9325) and row["status"] == "Amber"


def test_no_data_with_note_and_commentary_is_fine(tmp_path, register, good_dir):
    def change(wb):
        set_input(wb, "Measures", "LPD PM06", "Actual", None)
        set_input(wb, "Measures", "LPD PM06", "Note", "data not yet available")
        set_input(wb, "Measures", "LPD PM06", "Commentary", "Procurement system migration; figure due in May.")
    fr = validate_file(mutate(good_dir / GOVERNANCE, tmp_path / GOVERNANCE, change), register)
    assert fr.valid and fr.findings == []


def test_sorted_sheet_reads_the_same(tmp_path, register, good_dir):
    def change(wb):
        ws = wb["Risks"]
        rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
        rows.reverse()
        for r, values in enumerate(rows, start=2):
            for c, v in enumerate(values, start=1):
                ws.cell(r, c).value = v
        # a note typed far below the table
        ws.cell(400, 1).value = "Checked by the risk manager"
    fr = validate_file(mutate(good_dir / GOVERNANCE, tmp_path / GOVERNANCE, change), register)
    assert fr.valid
    assert flatten(fr.findings) == [("Risks", "A400", "stray-row")]


def test_json_equals_records(tmp_path, register, returns_copy):
    mutate(returns_copy / CHILDREN, returns_copy / CHILDREN, _set("Measures", "EHCS PM29", "Actual", "about 56"))
    report = validate_paths([returns_copy], register, period=Q4)
    data = json.loads(report.to_json())
    assert data == report.records() and data
    assert all(list(d) == list(FIELDS) for d in data)
    assert all(d["code"] in CATALOGUE for d in data)


def test_files_are_never_modified(tmp_path, register, returns_copy):
    before = {p.name: p.read_bytes() for p in returns_copy.iterdir()}
    mtimes = {p.name: p.stat().st_mtime_ns for p in returns_copy.iterdir()}
    from derbyxl.annotate import annotate_report

    report = validate_paths([returns_copy], register, period=Q4)
    annotate_report(report, tmp_path / "annotated")
    assert {p.name: p.read_bytes() for p in returns_copy.iterdir()} == before
    assert {p.name: p.stat().st_mtime_ns for p in returns_copy.iterdir()} == mtimes


def test_annotated_copy(tmp_path, register, good_dir):
    from derbyxl.annotate import annotate_file
    from derbyxl.safe_openpyxl import load_workbook

    path = mutate(good_dir / CHILDREN, tmp_path / CHILDREN, _set("Measures", "EHCS PM29", "Actual", "=HYPERLINK(\"http://x\")"))
    original = path.read_bytes()
    fr = validate_file(path, register)
    out = annotate_file(fr, tmp_path / "annotated")
    assert path.read_bytes() == original
    wb = load_workbook(out)
    assert wb.sheetnames[0] == "Problems"
    problems = list(wb["Problems"].iter_rows(min_row=2, values_only=True))
    assert [(p[1], p[2], p[4]) for p in problems if p[0] == "error"] == [("Measures", "G4", "not-a-number")]
    link = wb["Problems"]["C2"].hyperlink
    assert link.location == "'Measures'!G4"
    cell = wb["Measures"]["G4"]
    assert cell.comment and "not a number" in cell.comment.text
    assert cell.fill.fgColor.rgb.endswith("FFC7CE")
    # the officer's formula-looking text is quoted in the message as text, not a formula
    assert all(c.data_type == "s" for row in wb["Problems"].iter_rows(min_row=2) for c in row if c.value is not None)


def test_same_named_returns_in_two_folders_get_two_annotated_copies(tmp_path, register, good_dir):
    from derbyxl.annotate import annotate_report
    from derbyxl.safe_openpyxl import load_workbook

    first, second = tmp_path / "april", tmp_path / "may"
    first.mkdir(), second.mkdir()
    mutate(good_dir / CHILDREN, first / CHILDREN, _set("Measures", "EHCS PM29", "Actual", "lots"))
    mutate(good_dir / CHILDREN, second / CHILDREN, _set("Measures", "EHCS PM28", "Actual", "some"))
    report = validate_paths([first, second], register, period=Q4)
    assert [fr.workbook for fr in report.files] == [f"april/{CHILDREN}", f"may/{CHILDREN}"]
    written = annotate_report(report, tmp_path / "annotated")
    assert len(written) == 2 and len({p.name for p in written}) == 2
    cells = [{p[2] for p in load_workbook(p)["Problems"].iter_rows(min_row=2, values_only=True) if p[0] == "error"} for p in written]
    assert cells == [{"G4"}, {"G3"}]


def test_a_return_from_an_older_register_is_flagged_only_when_its_portfolio_changed(tmp_path, register, good_dir):
    import csv

    from derbyxl.register import load_register, sample_register_path

    rows = list(csv.reader(open(sample_register_path(), encoding="utf-8")))
    header = rows[0]
    col = {h: i for i, h in enumerate(header)}
    governance = next(r for r in rows[1:] if r[col["Portfolio"]].startswith("Governance") and r[col["Kind"]] == "measure")
    other = next(r for r in rows[1:] if not r[col["Portfolio"]].startswith("Governance"))

    def edited(name, row, column, value):
        path = tmp_path / name
        changed = [list(r) for r in rows]
        changed[rows.index(row)][col[column]] = value
        with open(path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(changed)
        return load_register(path)

    returned = good_dir / GOVERNANCE
    # The very register the template was made from: nothing to compare.
    assert "register-changed" not in {f.code for f in validate_file(returned, register, period=Q4).findings}
    # Another portfolio's item edited: the file differs, this portfolio's items do not.
    elsewhere = edited("elsewhere.csv", other, "Description", other[col["Description"]] + " (revised)")
    assert elsewhere.fingerprint != register.fingerprint
    assert "register-changed" not in {f.code for f in validate_file(returned, elsewhere, period=Q4).findings}
    # This portfolio's target moved since the template was made.
    moved = edited("moved.csv", governance, "Target", "12345")
    found = [f for f in validate_file(returned, moved, period=Q4).findings if f.code == "register-changed"]
    assert len(found) == 1 and found[0].workbook == GOVERNANCE and found[0].severity == "warning"


@pytest.mark.soffice
def test_a_return_saved_by_libreoffice_reads_the_same(register, saved_by_libreoffice):
    # A service lead without Excel fills the return in LibreOffice Calc and saves it as .xlsx:
    # LibreOffice rewrites every part (its own styles, shared strings, the very hidden stamp).
    original, saved = saved_by_libreoffice["return"]
    before = validate_file(original, register, period=Q4)
    after = validate_file(saved, register, period=Q4)
    assert any(f.code == "not-a-number" for f in before.findings)
    same = lambda report: sorted((f.sheet, f.cell, f.ref, f.code, f.message) for f in report.findings)  # noqa: E731
    assert same(after) == same(before)
    assert (after.portfolio, after.period, after.signed_by, after.signed_date) == (before.portfolio, before.period, before.signed_by, before.signed_date)
    assert len(after.rows) == len(before.rows) == before.items
    assert sorted(after.rows, key=lambda r: r["ref"]) == sorted(before.rows, key=lambda r: r["ref"])


def test_a_missing_sign_off_points_at_its_cell_and_is_highlighted(tmp_path, register, good_dir):
    from openpyxl import load_workbook

    from derbyxl.annotate import annotate_file

    unsigned = mutate(good_dir / GOVERNANCE, tmp_path / GOVERNANCE, lambda wb: wb["Cover"]["C21"].__setattr__("value", None))
    fr = validate_file(unsigned, register, period=Q4)
    assert [(f.sheet, f.cell, f.code) for f in fr.findings if f.code == "missing-sign-off"] == [("Cover", "C21", "missing-sign-off")]
    copy = annotate_file(fr, tmp_path / "annotated")
    cell = load_workbook(copy)["Cover"]["C21"]
    assert cell.fill.fgColor.rgb.endswith("FFEB9C") and "Date empty on the Cover sheet" in cell.comment.text


@pytest.mark.parametrize("typed, then", [(92, "CM PM03 would then be Amber; add commentary too, as it is needed for Amber)"), (95, "CM PM03 would then be Green)")])
def test_a_suggested_fix_says_the_status_it_would_give(tmp_path, register, returns_copy, typed, then):
    # Council tax collected: target 93.8%, Green within 0.5%. 92 typed for 92% would be Amber
    # once corrected, which then needs commentary: the message says so at once.
    path = returns_copy / GOVERNANCE

    def change(wb):
        set_input(wb, "Measures", "CM PM03", "Actual", typed)
        set_input(wb, "Measures", "CM PM03", "Commentary", None)

    mutate(path, path, change)
    report = validate_file(path, register, period=Q4)
    (f,) = [f for f in report.findings if f.code == "percent-as-whole"]
    assert f.ref == "CM PM03" and f.message.endswith(f": {typed} would be {typed * 100}%; if you meant {typed}%, type {typed}% ({then}")
