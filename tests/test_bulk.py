"""Rows streamed into xlsxwriter's XML (derbyxl.bulk): read back by openpyxl, python-calamine
and LibreOffice exactly as written, with the styles and table xlsxwriter laid out."""

from __future__ import annotations

import math
import warnings

import pytest
import python_calamine as calamine
import xlsxwriter
from openpyxl import load_workbook

from derbyxl.bulk import MAX_TEXT, RowRenderer, Splicer, style_index

from .conftest import libreoffice_convert

AWKWARD = [
    "plain",
    "A & B <tag> \"quoted\" 'single'",
    '=HYPERLINK("http://evil.example","click")',
    "+cmd|' /C calc'!A0",
    "  leading and trailing  ",
    "two\nlines",
    "£1,234 – 5% ✓ ünïcödé",
    "x" * (MAX_TEXT + 50),
]


def _workbook(path, rows, n_header=3):
    splicer = Splicer()
    wb = xlsxwriter.Workbook(splicer.buffer, {"in_memory": True})
    pct = wb.add_format({"num_format": "0.0%"})
    ws = wb.add_worksheet("Data")
    for c, h in enumerate(["Text", "Number", "Percent"][:n_header]):
        ws.write_string(0, c, h)
    ws.add_table(0, 0, 1, n_header - 1, {"name": "T", "columns": [{"header": h} for h in ("Text", "Number", "Percent")[:n_header]]})
    splicer.resize_table("T", f"A1:{'ABC'[n_header - 1]}2", f"A1:{'ABC'[n_header - 1]}{len(rows) + 1}")
    other = wb.add_worksheet("After")
    other.write_string(0, 0, "a sheet after the streamed one")
    styles = (0, 0, style_index(pct))

    def xml():
        render = RowRenderer(n_header)
        for r, values in enumerate(rows, start=1):
            yield render.row(r, values, styles)

    splicer.add(ws, xml, len(rows), n_header - 1)
    wb.close()
    splicer.save(path)
    return path


def _openpyxl(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_workbook(path)


def test_text_numbers_and_blanks_read_back_exactly(tmp_path):
    rows = [(text, float(i), 0.125) for i, text in enumerate(AWKWARD)]
    rows += [(None, math.nan, math.inf), ("", 7, None), ("bool", True, -0.5), ("big", 1e300, 1e-300)]
    path = _workbook(tmp_path / "b.xlsx", rows)
    ws = _openpyxl(path)["Data"]
    got = list(ws.iter_rows(min_row=2, values_only=True))
    assert len(got) == len(rows)
    for (text, number, pct), (g_text, g_number, g_pct) in zip(rows[: len(AWKWARD)], got):
        assert g_text == text[:MAX_TEXT] and g_number == number and g_pct == pct
    assert got[len(AWKWARD)] == (None, None, None)  # NaN and infinity are left empty, never written as text
    assert got[len(AWKWARD) + 1] == (None, 7, None)
    assert got[len(AWKWARD) + 2] == ("bool", None, -0.5)  # a bool is not a number
    assert got[len(AWKWARD) + 3] == ("big", 1e300, 1e-300)
    # Every text stays text, formula-looking ones included, and the number format applies.
    for row in ws.iter_rows(min_row=2, max_row=len(AWKWARD) + 1):
        assert row[0].data_type == "s" and row[2].number_format == "0.0%"
    assert ws.tables["T"].ref == f"A1:C{len(rows) + 1}"
    assert _openpyxl(path)["After"]["A1"].value == "a sheet after the streamed one"
    # python-calamine (the reader of returns) agrees.
    wb = calamine.CalamineWorkbook.from_path(str(path))
    grid = wb.get_sheet_by_name("Data").to_python()
    assert grid[0] == ["Text", "Number", "Percent"]
    assert [r[0] for r in grid[1 : len(AWKWARD) + 1]] == [t[:MAX_TEXT] for t in AWKWARD]


def test_control_characters_do_not_break_the_file(tmp_path):
    path = _workbook(tmp_path / "c.xlsx", [("bell\x07 and nul\x00 here", 1, 0.1)])
    value = _openpyxl(path)["Data"]["A2"].value
    assert value.startswith("bell") and value.endswith("here")


def test_rows_stream_in_pieces_and_the_dimension_covers_them(tmp_path):
    n = 5_000  # more than one piece handed to the compressing thread
    path = _workbook(tmp_path / "d.xlsx", [(f"row {i}", i, i / n) for i in range(n)])
    ws = _openpyxl(path)["Data"]
    assert ws.max_row == n + 1 and ws.cell(n + 1, 1).value == f"row {n - 1}" and ws.cell(n + 1, 2).value == n - 1
    import zipfile

    with zipfile.ZipFile(path) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml")
    assert f'<dimension ref="A1:C{n + 1}"/>'.encode() in sheet


def test_a_failing_row_source_leaves_no_half_file_behind(tmp_path):
    def broken():
        yield RowRenderer(1).row(1, ("ok",), (0,))
        raise RuntimeError("source failed")

    splicer = Splicer()
    wb = xlsxwriter.Workbook(splicer.buffer, {"in_memory": True})
    ws = wb.add_worksheet("Data")
    ws.write_string(0, 0, "h")
    splicer.add(ws, broken, 1, 0)
    wb.close()
    with pytest.raises(RuntimeError, match="source failed"):
        splicer.save(tmp_path / "e.xlsx")
    assert list(tmp_path.iterdir()) == []  # no partial workbook left at the name


@pytest.mark.soffice
def test_libreoffice_reads_streamed_rows(tmp_path):
    rows = [(text[:200], float(i), i / 10) for i, text in enumerate(AWKWARD)]
    path = _workbook(tmp_path / "lo.xlsx", rows)
    (csv_path,) = libreoffice_convert([path], tmp_path / "out", "Text - txt - csv (StarCalc)", ".csv", options="44,34,76")
    text = csv_path.read_text(encoding="utf-8")
    # Text arrives as text (the formula-looking one is not evaluated to "click"), numbers as numbers.
    assert "A & B <tag>" in text and '"=HYPERLINK(""http://evil.example"",""click"")"' in text and "ünïcödé" in text
    assert "\nplain,0,0.0%\n" in text  # the number format from xlsxwriter applies in LibreOffice too
    assert len(text.strip().splitlines()) >= len(rows) + 1


def test_repeated_texts_render_as_when_first_seen():
    """The renderer keeps the markup of short texts it has seen: rows rendered with it equal
    rows rendered with nothing kept, whatever the text, style or row."""
    rows = [(text, i % 3 or None, 1.5 * i) for i in range(40) for text in (*AWKWARD, "Green", "Green ", "Green")]
    styles = [(1, 2, None), (None, 2, 3), (1, None, None)]
    keeping, fresh = RowRenderer(3), RowRenderer(3)
    fresh.TEXT_CACHE = 0
    for r, values in enumerate(rows):
        style = styles[r % 3]
        assert keeping.row(r, values, style) == fresh.row(r, values, style)
    assert keeping._texts and not fresh._texts
    # Only short texts are kept, and no more than the cap.
    assert all(len(text) <= 64 for text, _ in keeping._texts)
