"""Returns saved as OpenDocument (.ods) by LibreOffice: read with the same guarantees, findings
and results as their .xlsx twins (issue 16)."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import pytest

from derbyxl.consolidate import consolidate
from derbyxl.guard import scan
from derbyxl.validate import validate_file, validate_paths

from .conftest import GOVERNANCE, Q4, libreoffice_convert, made_once
from .faults import mutate, set_input


def to_ods(files: list[Path], out: Path) -> list[Path]:
    """Save workbooks as .ods with LibreOffice, as an officer pressing "Use ODF Format" does."""
    return libreoffice_convert(files, out, "calc8", ".ods")


#: Governance's return with one slip each, saved as .ods beside the good returns.
FAULTY = {
    "not-a-number": lambda wb: set_input(wb, "Measures", "CM PM03", "Actual", "lots"),
    "merged": lambda wb: wb["Measures"].merge_cells("G2:H2"),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory, good_dir):
    """The good returns in one folder and the faulty ones in another (as .xlsx and .ods),
    saved by LibreOffice once for the run."""

    def make(folder: Path) -> None:
        (folder / "faulty-xlsx").mkdir()
        faulty = [mutate(good_dir / GOVERNANCE, folder / "faulty-xlsx" / f"{name}.xlsx", change) for name, change in FAULTY.items()]
        to_ods(sorted(good_dir.glob("*.xlsx")), folder / "ods")
        to_ods(faulty, folder / "faulty-ods")

    folder = made_once(tmp_path_factory, "ods", make)
    return folder / "ods", {name: (folder / "faulty-xlsx" / f"{name}.xlsx", folder / "faulty-ods" / f"{name}.ods") for name in FAULTY}


@pytest.fixture(scope="module")
def ods_dir(converted):
    return converted[0]


def _items(rows):
    keep = ("ref", "kind", "actual", "status", "status_word", "score", "commentary", "note", "target", "dot", "dot_short", "previous_actual")
    return {r["ref"]: tuple(r.get(k) for k in keep) for r in rows}


@pytest.mark.soffice
def test_ods_returns_validate_and_consolidate_like_their_xlsx_twins(tmp_path, register, good_dir, ods_dir):
    report = validate_paths([ods_dir], register, period=Q4)
    assert len(report.files) == 9
    xlsx = validate_paths([good_dir], register, period=Q4)
    # The same findings, at the same cells (the demo's three warnings), and no error.
    assert report.valid
    flat = sorted((Path(f.workbook).stem, f.sheet, f.cell, f.code) for f in report.findings)
    assert flat == sorted((Path(f.workbook).stem, f.sheet, f.cell, f.code) for f in xlsx.findings)
    from_ods = consolidate(ods_dir, register, Q4, tmp_path / "ods-out")
    from_xlsx = consolidate(good_dir, register, Q4, tmp_path / "xlsx-out")
    assert len(from_ods.rows) == 199 and _items(from_ods.rows) == _items(from_xlsx.rows)
    assert all(s.used for s in from_ods.submissions) and not from_ods.missing


@pytest.mark.soffice
def test_ods_findings_are_at_the_same_cells(register, converted):
    bad, ods = converted[1]["not-a-number"]
    got = [(f.sheet, f.cell, f.ref, f.code) for f in validate_file(ods, register, period=Q4).findings]
    want = [(f.sheet, f.cell, f.ref, f.code) for f in validate_file(bad, register, period=Q4).findings]
    assert got == want and ("Measures", "G2", "CM PM03", "not-a-number") in got


@pytest.mark.soffice
def test_an_ods_named_xlsx_says_what_it_is(tmp_path, ods_dir):
    renamed = tmp_path / GOVERNANCE
    shutil.copyfile(ods_dir / (Path(GOVERNANCE).stem + ".ods"), renamed)
    res = scan(renamed)
    assert not res.ok and [f.code for f in res.findings] == ["wrong-file-type"]
    assert "OpenDocument spreadsheet (as LibreOffice saves one) named .xlsx; rename it to .ods" in res.findings[0].message


def _rewrite(src: Path, dst: Path, change: dict) -> Path:
    """Copy an .ods, replacing parts (name -> bytes, or a function of the old bytes)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename in change:
                new = change.pop(info.filename)
                data = new(data) if callable(new) else new
            zout.writestr(info, data, compress_type=zipfile.ZIP_STORED if info.filename == "mimetype" else zipfile.ZIP_DEFLATED)
        for name, data in change.items():
            zout.writestr(name, data)
    return dst


def _first_value_cell(content: bytes, attrs: bytes) -> bytes:
    """content.xml with the first cell holding a value given extra attributes."""
    return re.sub(rb"<table:table-cell (office:value-type)", b"<table:table-cell " + attrs + rb" \1", content, count=1)


HOSTILE_ODS = {
    "far-columns": ({"content.xml": lambda c: _first_value_cell(c, b'table:number-columns-repeated="16384"')}, "sheet-too-large"),
    "far-rows": ({"content.xml": lambda c: re.sub(rb"<table:table-row ", b'<table:table-row table:number-rows-repeated="1048576" ', c, count=1)}, "sheet-too-large"),
    "entities": ({"content.xml": lambda c: c.replace(b"?>", b'?><!DOCTYPE x [<!ENTITY a "aaaa">]>', 1)}, "xml-forbidden"),
    "macros": ({"Basic/Standard/Module1.xml": b"<x/>"}, "macro-workbook"),
    "encrypted": ({"META-INF/manifest.xml": lambda m: m.replace(b"</manifest:manifest>", b"<manifest:encryption-data/></manifest:manifest>")}, "password-protected"),
    "not-a-spreadsheet": ({"mimetype": b"application/vnd.oasis.opendocument.text"}, "wrong-file-type"),
    "no-content": ({"content.xml": None}, "missing-part"),
}


@pytest.mark.soffice
@pytest.mark.parametrize("case", sorted(HOSTILE_ODS))
def test_hostile_ods_gets_a_finding_and_never_reaches_the_reader_unbounded(tmp_path, register, ods_dir, case):
    change, code = HOSTILE_ODS[case]
    src = ods_dir / (Path(GOVERNANCE).stem + ".ods")
    if change.get("content.xml", 1) is None:  # a part left out
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp_path / "h.ods", "w") as zout:
            for info in zin.infolist():
                if info.filename != "content.xml":
                    zout.writestr(info, zin.read(info))
        path = tmp_path / "h.ods"
    else:
        path = _rewrite(src, tmp_path / "h.ods", dict(change))
    # Read in the runner's worker process, as every return is: were the pre-scan to let it
    # through to a reader that aborts, the worker would die (reader-crashed), not pytest.
    report = validate_file(path, register, period=Q4, workers=1)
    assert [f.code for f in report.findings] == [code]


@pytest.mark.soffice
def test_an_error_value_in_an_ods_is_an_excel_error_at_its_cell(tmp_path, register, ods_dir):
    src = ods_dir / (Path(GOVERNANCE).stem + ".ods")
    with zipfile.ZipFile(src) as zf:
        content = zf.read("content.xml")
    # CM PM03's Actual (G2) as LibreOffice saves =1/0 typed there: an error, cached as 0.
    cell = re.search(rb'<table:table-cell[^>]*office:value="0.9325"[^>]*>.*?</table:table-cell>', content)
    assert cell, "the Actual cell was not found"
    error = b'<table:table-cell table:formula="of:=1/0" office:value-type="float" office:value="0" calcext:value-type="error"><text:p>#DIV/0!</text:p></table:table-cell>'
    path = _rewrite(src, tmp_path / "err.ods", {"content.xml": content.replace(cell.group(0), error, 1)})
    found = [(f.sheet, f.cell, f.code) for f in validate_file(path, register, period=Q4).findings if f.severity == "error"]
    assert found == [("Measures", "G2", "excel-error")]


@pytest.mark.soffice
def test_merged_answer_cells_in_an_ods_are_found_as_in_xlsx(register, converted):
    bad, ods = converted[1]["merged"]
    got = [(f.sheet, f.cell, f.code) for f in validate_file(ods, register, period=Q4).findings if f.code == "merged-cells"]
    want = [(f.sheet, f.cell, f.code) for f in validate_file(bad, register, period=Q4).findings if f.code == "merged-cells"]
    assert got == want == [("Measures", "G2", "merged-cells")]
