"""Templates checked by their meaning: items, validations, protection, formats, the stamp,
and the live preview formula evaluated against the Python rules."""

import io
import warnings
import zipfile

import pytest
import xlsxwriter
from openpyxl import load_workbook

from derbyxl import rag
from derbyxl.demo import fill_return
from derbyxl.read import read_return
from derbyxl.spec import FORMAT_VERSION, SHEET_BY_NAME, STAMP_SHEET

from .conftest import Q4, template_path


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_workbook(path)


def test_one_workbook_per_portfolio_with_every_item_once(register, template_dir):
    files = sorted(template_dir.glob("*.xlsx"))
    assert len(files) == 9
    seen = {}
    for path in files:
        wb = _load(path)
        stamp = dict(r for r in wb[STAMP_SHEET].iter_rows(values_only=True))
        portfolio = stamp["portfolio"]
        for name in wb.sheetnames:
            if name not in SHEET_BY_NAME:
                continue
            spec = SHEET_BY_NAME[name]
            for row in wb[name].iter_rows(min_row=2, values_only=True):
                ref = row[0]
                assert ref not in seen, f"{ref} in {path.name} and {seen.get(ref)}"
                seen[ref] = path.name
                item = register.by_ref[ref]
                assert (item.portfolio, item.kind) == (portfolio, spec.kind)
    assert set(seen) == set(register.by_ref)


def test_inputs_validated_and_unlocked_everything_else_locked(template_dir):
    for path in template_dir.glob("*.xlsx"):
        wb = _load(path)
        for name in wb.sheetnames:
            if name not in SHEET_BY_NAME:
                continue
            ws, spec = wb[name], SHEET_BY_NAME[name]
            assert ws.protection.sheet and ws.protection.sort is False and ws.protection.autoFilter is False  # False = allowed
            assert ws.freeze_panes == "C2"
            assert ws.auto_filter.ref
            validated = set()
            for dv in ws.data_validations.dataValidation:
                assert dv.showErrorMessage and dv.showInputMessage and dv.prompt
                for rng in dv.sqref.ranges:
                    validated.update((r, c) for r in range(rng.min_row, rng.max_row + 1) for c in range(rng.min_col, rng.max_col + 1))
            inputs = {c.caption for c in spec.inputs}
            for r in range(2, ws.max_row + 1):
                for c, col in enumerate(spec.columns, start=1):
                    cell = ws.cell(r, c)
                    if col.caption in inputs:
                        assert cell.protection.locked is False, (path.name, cell.coordinate)
                        assert (cell.row, cell.column) in validated, (path.name, cell.coordinate)
                        assert cell.fill.fgColor.rgb.endswith("FFF9DB")
                    else:
                        assert cell.protection.locked is True, (path.name, cell.coordinate)
            assert ws.page_setup.orientation == "landscape"
            assert ws.print_title_rows == "$1:$1"


def test_measure_cells_formatted_by_unit(template_dir):
    ws = _load(template_path(template_dir, "Children"))["Measures"]
    header = [c.value for c in ws[1]]
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    actual = header.index("Actual")
    assert rows["EHCS PM21"][actual].number_format == "0.0%"
    assert rows["EHCS PM21"][header.index("Target")].value == pytest.approx(0.047)
    ws = _load(template_path(template_dir, "City-Centre"))["Measures"]
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    assert rows["Regen PM18"][actual].number_format.startswith("£")


def test_status_colours_are_conditional_formats(template_dir):
    wb = _load(template_path(template_dir, "City-Centre"))
    for name, expected in (("Measures", {'"Blue"', '"Green"', '"Amber"', '"Red"'}), ("Actions", {'"Completed"', '"On track"', '"Some slippage"', '"Major slippage"'}), ("Projects", {'"Green/Amber"', '"Amber/Red"'})):
        formulas = {f for cf in wb[name].conditional_formatting for rule in cf.rules for f in rule.formula}
        assert expected <= formulas, name


def test_stamp_is_very_hidden_and_complete(register, template_dir):
    wb = _load(template_path(template_dir, "Governance"))
    ws = wb[STAMP_SHEET]
    assert ws.sheet_state == "veryHidden"
    stamp = dict(r for r in ws.iter_rows(values_only=True))
    assert stamp["format_version"] == str(FORMAT_VERSION)
    assert stamp["period"] == Q4.key and stamp["portfolio"] == "Governance and Finance"
    assert stamp["register_fingerprint"] == register.fingerprint
    assert wb["Cover"]["C20"].protection.locked is False


def test_fill_as_excel_stores_and_read_back(tmp_path, register, template_dir, answers):
    path = fill_return(template_path(template_dir, "Children"), answers, tmp_path / "filled.xlsx")
    raw = read_return(path)
    assert raw.stamp["portfolio"] == "Children, Young People and Skills"
    read = {row.ref: row.values for sheet in raw.sheets.values() for row in sheet.rows}
    items = register.for_portfolio("Children, Young People and Skills")
    assert set(read) == {i.ref for i in items}
    for item in items:
        a = answers[item.ref]
        got = read[item.ref]
        if item.kind == "measure":
            assert got.get("actual") == (pytest.approx(a["actual"]) if "actual" in a else None)
        elif item.kind in ("action", "project"):
            assert got["status"] == a["status"]
        else:
            assert (got["likelihood"], got["impact"]) == (a["likelihood"], a["impact"])
        assert got.get("commentary") == a.get("commentary")
    assert raw.sign_off["completed_by"] == "Service lead"


PREVIEW_CASES = [
    (110, 100, "higher", rag.KEY),
    (109.99, 100, "higher", rag.KEY),
    (98, 100, "higher", rag.KEY),
    (97.99, 100, "higher", rag.KEY),
    (90, 100, "higher", rag.KEY),
    (89.99, 100, "higher", rag.KEY),
    (0.98, 1.0, "higher", rag.KEY),
    (90, 100, "lower", rag.KEY),
    (102, 100, "lower", rag.KEY),
    (110.01, 100, "lower", rag.KEY),
    (0, 0, "lower", rag.KEY),
    (1, 0, "lower", rag.KEY),
    (-0.21, -0.17, "higher", rag.KEY),
    (-0.15, -0.17, "higher", rag.KEY),
    (None, 100, "higher", rag.KEY),
    (5, None, "higher", rag.KEY),
    (0.9325, 0.938, "higher", rag.Tolerances(green_within=0.005)),
    (0.9375, 0.938, "higher", rag.Tolerances(green_within=0.005)),
]


def test_preview_formula_matches_python_rules(tmp_path):
    formulas = pytest.importorskip("formulas")
    path = tmp_path / "preview.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("S")
    for i, (a, t, p, tol) in enumerate(PREVIEW_CASES):
        if a is not None:
            ws.write_number(i, 0, a)
        if t is not None:
            ws.write_number(i, 1, t)
        ws.write_formula(i, 2, rag.measure_status_formula(f"A{i + 1}", f"B{i + 1}", p, tol))
    wb.close()
    solution = formulas.ExcelModel().loads(str(path)).finish().calculate()
    values = {k.split("!")[-1].upper(): v.value[0, 0] for k, v in solution.items() if "!" in k}
    for i, (a, t, p, tol) in enumerate(PREVIEW_CASES):
        assert values[f"C{i + 1}"] == rag.measure_status(a, t, p, tol), (a, t, p)


def test_preview_formula_in_a_generated_template(tmp_path, template_dir, answers):
    """The real template's formula, evaluated after filling, agrees with the Python rules."""
    formulas = pytest.importorskip("formulas")
    path = fill_return(template_path(template_dir, "Governance"), answers, tmp_path / "g.xlsx")
    solution = formulas.ExcelModel().loads(str(path)).finish().calculate()
    wb = _load(path)
    ws = wb["Measures"]
    header = [c.value for c in ws[1]]
    col = header.index("Status preview")
    from derbyxl.register import load_register, sample_register_path

    reg = load_register(sample_register_path())
    checked = 0
    for r in range(2, ws.max_row + 1):
        ref = ws.cell(r, 1).value
        item = reg.by_ref[ref]
        key = next(k for k in solution if k.upper().endswith(f"MEASURES'!{ws.cell(r, col + 1).coordinate}"))
        expected = rag.measure_status(answers[ref].get("actual"), item.target, item.polarity, item.tolerances)
        assert solution[key].value[0, 0] == expected
        checked += 1
    assert checked == 3


def test_one_portfolio_and_password(tmp_path, register):
    from derbyxl.template import write_templates

    written = write_templates(register, Q4, tmp_path, portfolios=["governance and finance"], password="s3cret")
    assert [w.portfolio for w in written] == ["Governance and Finance"]
    ws = _load(written[0].path)["Risks"]
    assert ws.protection.sheet and ws.protection.password
    with pytest.raises(ValueError, match="not in the register"):
        write_templates(register, Q4, tmp_path, portfolios=["Nope"])


def test_previous_actual_from_history(tmp_path, register):
    from derbyxl.template import write_template

    info = write_template(register, "Governance and Finance", Q4, tmp_path, previous={"CM PM03": ("2024-25-Q3", 0.9111)})
    ws = _load(info.path)["Measures"]
    rows = {r[0].value: r for r in ws.iter_rows(min_row=2)}
    header = [c.value for c in ws[1]]
    assert rows["CM PM03"][header.index("Previous actual")].value == pytest.approx(0.9111)
    assert rows["CM PM10"][header.index("Previous actual")].value == pytest.approx(0.951)


def test_quick_formula_path_gives_what_xlsxwriter_gives(register):
    from xlsxwriter.worksheet import Worksheet

    from derbyxl import rag
    from derbyxl.xlsx_util import PLAIN_FUNCTIONS
    from derbyxl.xlsx_util import Worksheet as QuickWorksheet

    wb = xlsxwriter.Workbook(io.BytesIO(), {"in_memory": True})
    quick = wb.add_worksheet("q", worksheet_class=QuickWorksheet)
    plain = wb.add_worksheet("p")
    # Each function the quick path lets through is one xlsxwriter leaves as it is, even where
    # it prefixes every newer function it knows (conditional formats, validations).
    for name in PLAIN_FUNCTIONS:
        assert Worksheet._prepare_formula(plain, f"={name}(A1)", True) == f"{name}(A1)", name
    formulas = [rag.measure_status_formula("G5", "E5", item.polarity, item.tolerances) for item in register.items if item.kind == "measure"]
    formulas += ['=IF(AND(ISNUMBER(H3),ISNUMBER(I3)),H3*I3,"")', '"Green"', 'NOT(ISERROR(SEARCH("Improving",F2)))', "{=SUM(A1:A3)}"]
    newer = ["=XLOOKUP(A1,B:B,C:C)", "=SORT(A1:A9)", "=IF(A1,CONCAT(B1,C1),0)", "=STDEV.S(A1:A9)", "=_xlfn.IFS(A1,1)", '=SEARCH("x",A1)+ISFORMULA(B1)', "=A1SINGLE(B1)"]
    for text in formulas + newer:
        for expand in (False, True):
            assert quick._prepare_formula(text, expand) == Worksheet._prepare_formula(plain, text, expand), (text, expand)
    assert quick._prepare_formula("=XLOOKUP(A1,B:B,C:C)") == "_xlfn.XLOOKUP(A1,B:B,C:C)"
    assert quick._prepare_formula("=IF(A1,CONCAT(B1,C1),0)", True) == "IF(A1,_xlfn.CONCAT(B1,C1),0)"
    wb.close()


def test_a_template_is_the_same_bytes_as_xlsxwriter_alone_writes(tmp_path, register, monkeypatch):
    """derbyxl's worksheets change how fast a template is written, not one byte of it."""
    import datetime as dt

    from xlsxwriter.worksheet import Worksheet

    from derbyxl import xlsx_util
    from derbyxl.template import write_template

    at = dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.timezone.utc)
    quick = write_template(register, "Governance and Finance", Q4, tmp_path / "quick", generated_at=at).path.read_bytes()
    monkeypatch.setattr(xlsx_util.Workbook, "worksheet_class", Worksheet)
    plain = write_template(register, "Governance and Finance", Q4, tmp_path / "plain", generated_at=at).path.read_bytes()
    assert quick == plain
    with zipfile.ZipFile(io.BytesIO(quick)) as z:
        sheets = b"".join(z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
    assert b"<f>" in sheets and b"<formula>" in sheets  # formulas and conditional formats were written


def test_structure_is_protected_so_sheets_cannot_be_shown_or_removed(tmp_path, register, template_dir):
    from openpyxl import load_workbook

    wb = load_workbook(template_path(template_dir, "Governance"))
    assert wb.security.lockStructure and not wb.security.workbookPassword  # no password unless asked
    assert wb["_derbyxl"].sheet_state == "veryHidden"
    from derbyxl.template import write_template

    with_password = write_template(register, "Governance and Finance", Q4, tmp_path, password="Perf2025!")
    security = load_workbook(with_password.path).security
    assert security.lockStructure and security.workbookPassword == "AEC6"


@pytest.mark.soffice
def test_the_stamp_sheet_stays_hidden_through_a_save_in_libreoffice(saved_by_libreoffice):
    # LibreOffice 7.4 does not apply an .xlsx's structure protection when it opens one (checked
    # through UNO: the document reports itself unprotected), so there the stamp sheet is only
    # hidden; it stays so when the return is saved, and the stamp reads back.
    from openpyxl import load_workbook

    _, saved = saved_by_libreoffice["template"]
    assert load_workbook(saved)["_derbyxl"].sheet_state in ("hidden", "veryHidden")
    assert read_return(saved).stamp["portfolio"] == "Governance and Finance"


def test_the_due_date_can_be_set(tmp_path):
    from derbyxl.cli import main

    assert main(["templates", "--period", "2024-25-Q4", "--portfolio", "Governance and Finance", "--due", "30/04/2025", "--out", str(tmp_path)]) == 0
    cover = {r[1]: r[2] for r in load_workbook(next(tmp_path.glob("*.xlsx")))["Cover"].iter_rows(values_only=True) if len(r) > 2}
    assert cover["Due date"] == "Wednesday 30 April 2025"
    assert main(["templates", "--period", "2024-25-Q4", "--due", "soon", "--out", str(tmp_path)]) == 2
