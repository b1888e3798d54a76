"""Annotated copies of faulty returns, ready to email back to the officer.

Each copy has every faulty cell filled red (warnings amber) with a comment giving the message,
and a Problems sheet listing every finding with a link to its cell. The original is never
opened for writing: the copy is made first and only the copy is changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.worksheet.hyperlink import Hyperlink

from derbyxl.findings import ERROR, FileReport, Report
from derbyxl.safe_openpyxl import load_workbook
from derbyxl.spec import safe_filename
from derbyxl.xlsx_util import atomic_path, row_height

#: The Problems sheet's column widths (characters): Severity .. What to do.
_WIDTHS = (9, 12, 7, 14, 20, 70, 50)

ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")
WARNING_FILL = PatternFill("solid", fgColor="FFEB9C")
#: Codes whose file cannot be opened by openpyxl, or should not be (a file that crashed one
#: reader is not handed to another in this process): no copy is made for them.
UNREADABLE = {
    "file-missing", "file-empty", "file-too-large", "wrong-file-type", "macro-workbook", "legacy-xls",
    "password-protected", "corrupt-file", "missing-part", "zip-bomb", "sheet-too-large", "xml-forbidden", "time-limit",
    "reader-crashed",
}


def _set_text(cell, text):
    # openpyxl turns any string starting with '=' into a formula; messages quote what officers
    # typed, so force the cell to hold text.
    cell.value = text
    cell.data_type = "s"


def annotated_name(workbook: str, taken: set[str] | None = None) -> str:
    """The copy's file name: derived from the return's name (with its folder when the report
    names one, as it does for two returns of the same name), confined to the output folder,
    and not one of ``taken``."""
    base = workbook[: -len(Path(workbook).suffix)] if Path(workbook).suffix else workbook
    stem = safe_filename(base.replace("/", " ")) or "return"
    name, n = f"{stem}_problems.xlsx", 2
    while taken is not None and name.lower() in taken:
        name, n = f"{stem}_problems ({n}).xlsx", n + 1
    if taken is not None:
        taken.add(name.lower())
    return name


def annotate_file(fr: FileReport, out_dir: str | Path, name: str | None = None) -> Path | None:
    """Write the annotated copy of one return; ``None`` when it has no findings or cannot be
    opened (an OpenDocument return gets none: openpyxl writes .xlsx only, and a copy in
    another format than the lead sent would be one more thing to convert)."""
    if not fr.findings or any(f.code in UNREADABLE for f in fr.findings) or Path(fr.path).suffix.lower() == ".ods":
        return None
    out_dir = Path(out_dir)
    target = out_dir / (name or annotated_name(fr.workbook))
    with atomic_path(target) as tmp:
        shutil.copyfile(fr.path, tmp)
        wb = load_workbook(tmp)
        for ws in wb.worksheets:
            ws.protection.sheet = False
        for f in fr.findings:
            if f.sheet in wb.sheetnames and f.cell:
                cell = wb[f.sheet][f.cell]
                cell.fill = ERROR_FILL if f.severity == ERROR else WARNING_FILL
                text = f"{f.severity.upper()}: {f.message}\n{f.hint}"
                if cell.comment is not None:
                    text = cell.comment.text + "\n\n" + text
                cell.comment = Comment(text[:30000], "derbyxl", width=320, height=140)
        if "Problems" in wb.sheetnames:
            del wb["Problems"]
        ws = wb.create_sheet("Problems", 0)
        headers = ("Severity", "Sheet", "Cell", "Ref", "Code", "Message", "What to do")
        for c, h in enumerate(headers, start=1):
            cell = ws.cell(1, c)
            _set_text(cell, h)
            cell.font = Font(bold=True)
        for r, f in enumerate(fr.findings, start=2):
            for c, v in enumerate((f.severity, f.sheet, f.cell, f.ref, f.code, f.message, f.hint), start=1):
                if v is not None:
                    _set_text(ws.cell(r, c), str(v))
            if f.sheet in wb.sheetnames and f.cell:
                link = ws.cell(r, 3)
                link.hyperlink = Hyperlink(ref=link.coordinate, location=f"'{f.sheet}'!{f.cell}", display=f.cell)
                link.font = Font(color="0563C1", underline="single")
            ws.cell(r, 1).fill = ERROR_FILL if f.severity == ERROR else WARNING_FILL
            # Wrapped text gets the height it needs: no program measures it when printing.
            height = row_height([(f.message, _WIDTHS[5]), (f.hint, _WIDTHS[6]), (f.ref, _WIDTHS[3])])
            if height:
                ws.row_dimensions[r].height = height
        for col, width in zip("ABCDEFG", _WIDTHS):
            ws.column_dimensions[col].width = width
        wrap = Alignment(wrap_text=True, vertical="top")
        for row in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=7):
            for cell in row:
                cell.alignment = wrap
        # Printed as a lead prints it: landscape, the seven columns on the page's width, each
        # finding whole on its row (wrapped, not cut), the header on every page.
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_title_rows = "1:1"
        ws.freeze_panes = "A2"
        wb.active = 0
        for sheet in wb.worksheets:
            sheet.sheet_view.tabSelected = sheet.title == "Problems"
        wb.save(tmp)
    return target


def annotate_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Annotated copies for every return with findings; returns the files written."""
    written = []
    taken: set[str] = set()
    for fr in report.files:
        if not fr.findings:
            continue
        path = annotate_file(fr, out_dir, annotated_name(fr.workbook, taken))
        if path:
            written.append(path)
    return written
