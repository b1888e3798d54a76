"""Findings: every problem derbyxl reports is one record, with a code from a closed catalogue.

A finding says where (workbook, sheet, cell, ref), what (code, with one title per code),
how bad (error or warning), the particulars (message) and what to do (hint). The console table,
the JSON export and the annotated workbook all render the same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, TextIO

from derbyxl.periods import period_key

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Code:
    severity: str
    title: str
    hint: str
    layer: str


def _c(layer, severity, title, hint):
    return Code(severity, title, hint, layer)


#: The closed catalogue of finding codes. Each code has one title and one hint.
CATALOGUE: dict[str, Code] = {
    # file
    "file-missing": _c("file", ERROR, "The file does not exist", "Check the path."),
    "file-empty": _c("file", ERROR, "The file is empty", "Save the return again in Excel and resend it."),
    "file-too-large": _c("file", ERROR, "The file is larger than a return can be", "Remove pictures and extra sheets, or ask the Performance team."),
    "wrong-file-type": _c("file", ERROR, "This is not a workbook derbyxl reads (.xlsx or .ods)", "Save the template you were sent as Excel Workbook (.xlsx) or, in LibreOffice, as ODF Spreadsheet (.ods)."),
    "macro-workbook": _c("file", ERROR, "The workbook contains macros (.xlsm)", "Save as Excel Workbook (*.xlsx), which drops the macros, and resend."),
    "legacy-xls": _c("file", ERROR, "This is an old-style .xls workbook", "Open it and Save As Excel Workbook (*.xlsx)."),
    "password-protected": _c("file", ERROR, "The workbook is encrypted with a password", "Remove the password to open (File > Info > Protect Workbook) and resend."),
    "corrupt-file": _c("file", ERROR, "The workbook is damaged and cannot be read", "Open it in Excel, let it repair, save, and resend; or start from a fresh template."),
    "reader-crashed": _c("file", ERROR, "Reading the workbook crashed the reader", "Open it in Excel, save it as a new .xlsx, and resend; tell the Performance team if it happens again."),
    "missing-part": _c("file", ERROR, "The workbook is missing a required part", "Start from a fresh template; this file was not saved by Excel."),
    "zip-bomb": _c("file", ERROR, "The workbook expands to far more data than a return holds", "Resend the return filled in from the template."),
    "sheet-too-large": _c("file", ERROR, "A sheet uses far more rows or columns than a return has", "Delete rows and columns below and right of the data, save, and resend."),
    "xml-forbidden": _c("file", ERROR, "The workbook contains XML declarations that are not allowed", "Resend a return saved by Excel from the template."),
    "time-limit": _c("file", ERROR, "Checking this workbook took longer than allowed", "Resend the return filled in from the template."),
    "external-link": _c("file", WARNING, "The workbook links to other files; the links were ignored", "Paste values instead of linking to other workbooks (Data > Edit Links > Break Link)."),
    "hidden-sheet": _c("file", WARNING, "A return sheet is hidden", "Unhide it (right-click a tab > Unhide) so it can be checked."),
    # identity
    "not-a-return": _c("identity", ERROR, "This workbook is not a derbyxl return template", "Fill in the template you were sent rather than a copy or a new workbook."),
    "outdated-template": _c("identity", ERROR, "The return was made from an older template", "Use this quarter's template; the performance team can carry the answers into it with derbyxl migrate."),
    "wrong-period": _c("identity", ERROR, "The return is for a different period", "Use the template for this period; the performance team can carry the answers into it with derbyxl migrate."),
    "unknown-portfolio": _c("identity", ERROR, "The return's portfolio is not in the register", "Check you used your portfolio's template."),
    "other-portfolio": _c("identity", ERROR, "The return is for another portfolio than this page's", "Upload your own portfolio's return: download its template from this page."),
    "other-register": _c("identity", ERROR, "The return was made from another register than the one loaded", "Pass --register with the register the templates were made from."),
    "register-changed": _c("identity", WARNING, "The register changed after this template was made", "Check targets against the latest template."),
    "duplicate-return": _c("identity", WARNING, "Another file returns the same portfolio for this quarter", "Keep one return per portfolio in the folder; consolidate uses the valid one signed latest."),
    # structure
    "missing-sheet": _c("structure", ERROR, "A sheet of the return is missing or renamed", "Restore the sheet's original name, or start from a fresh template."),
    "missing-column": _c("structure", ERROR, "A column of the return is missing or renamed", "Restore the header's original caption."),
    "missing-item": _c("structure", ERROR, "An item of the register is missing from the return", "Restore the deleted row, or start from a fresh template."),
    "duplicate-item": _c("structure", ERROR, "An item appears more than once", "Delete the extra row, keeping the one with your answer."),
    "unknown-item": _c("structure", ERROR, "A row's ref is not one of this portfolio's items", "Do not add rows; ask the Performance team to add items to the register."),
    "merged-cells": _c("structure", ERROR, "Cells in the answer area are merged", "Unmerge them (Home > Merge & Center) and answer each item in its own row."),
    "stray-row": _c("structure", WARNING, "Content found below the data was ignored", "Delete notes below the table; write them in Commentary."),
    # values
    "not-a-number": _c("values", ERROR, "The value is not a number", "Type a plain number, without words."),
    "ambiguous-number": _c("values", ERROR, "The number could be read more than one way", "Type the number without separators, e.g. 1234.5."),
    "unit-mismatch": _c("values", ERROR, "The value is in a different unit from the measure's", "Type the value in the unit shown in the Unit column."),
    "date-not-number": _c("values", ERROR, "The cell holds a date where a number belongs", "Clear the cell's format (Home > Clear > Formats) and type the number."),
    "excel-error": _c("values", ERROR, "The cell shows an Excel error", "Type the value rather than a formula."),
    "percent-as-whole": _c("values", ERROR, "A percentage was typed as a whole number", "Type it with the % sign (7.4%) so it is not read as 740%."),
    "out-of-range": _c("values", ERROR, "The value is outside the range this measure can take", "Check the value and its unit."),
    "value-normalised": _c("values", WARNING, "A typed value was read as a number", "Nothing to do if the reading is right; type plain numbers next time."),
    "no-data-text": _c("values", WARNING, "Text meaning 'no data' was typed where a number belongs", "Leave Actual blank and say why in Note."),
    "invalid-status": _c("values", ERROR, "The status is not one of the allowed values", "Pick the status from the cell's drop-down list."),
    "missing-status": _c("values", ERROR, "The status is missing", "Pick the status from the cell's drop-down list."),
    "invalid-risk-rating": _c("values", ERROR, "Likelihood and impact must be whole numbers from 1 to 4", "Pick 1, 2, 3 or 4."),
    "missing-risk-rating": _c("values", ERROR, "Likelihood or impact is missing", "Pick 1, 2, 3 or 4."),
    "text-too-long": _c("values", WARNING, "The text is very long and will not print well", "Shorten it to a few sentences."),
    # cross-field
    "missing-actual": _c("cross-field", ERROR, "The actual is missing and no reason is given", "Type the actual, or say in Note why there is no data (e.g. 'data not yet available')."),
    "missing-commentary": _c("cross-field", ERROR, "Commentary is required for this item", "Explain what is happening and what is being done."),
    # plausibility
    "large-change": _c("plausibility", WARNING, "The value moved much more than usual from the previous actual", "Check the value and its unit; explain the change in Commentary."),
    "completed-now-slipping": _c("plausibility", WARNING, "The action was Completed last time and is now slipping", "Check the status; explain in Commentary."),
    "missing-sign-off": _c("plausibility", WARNING, "The return is not signed off", "Fill in Completed by and Date on the Cover sheet."),
}

FIELDS = ("workbook", "sheet", "cell", "ref", "code", "severity", "message", "hint")


@dataclass(frozen=True)
class Finding:
    """One problem found in one place."""

    workbook: str
    sheet: str | None
    cell: str | None
    ref: str | None
    code: str
    severity: str
    message: str
    hint: str

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in FIELDS}

    @property
    def title(self) -> str:
        return CATALOGUE[self.code].title


def finding(code: str, workbook: str, message: str | None = None, *, sheet=None, cell=None, ref=None, severity=None) -> Finding:
    """Make a finding for a catalogue code; the message defaults to the code's title."""
    entry = CATALOGUE[code]  # KeyError is a programming error: codes are a closed set
    text = entry.title if not message else f"{entry.title}: {message}"
    return Finding(workbook, sheet, cell, ref, code, severity or entry.severity, text, entry.hint)


@dataclass
class FileReport:
    """What validating one workbook found, and what was read from it."""

    workbook: str
    path: str
    sha256: str | None = None
    portfolio: str | None = None
    period: str | None = None
    signed_by: str | None = None
    signed_date: str | None = None
    #: The register the return's template was made from (its stamp), and when the workbook
    #: says it was last saved (docProps/core.xml, ISO 8601 in UTC), for telling resubmissions apart.
    register_fingerprint: str | None = None
    saved_at: str | None = None
    items: int = 0
    findings: list[Finding] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == WARNING)

    @property
    def valid(self) -> bool:
        return self.errors == 0


@dataclass
class Report:
    """The result of validating several workbooks: one :class:`FileReport` each, and the
    quarter they were checked against (its key, such as ``2024-25-Q4``; None when no file
    named one and none was given)."""

    files: list[FileReport] = field(default_factory=list)
    period: str | None = None
    #: Files in the folders checked that cannot be returns by their name (Thumbs.db, a PDF):
    #: skipped, and listed once.
    ignored: list[str] = field(default_factory=list)
    #: Set when most returns were made from another register than the one loaded: the one
    #: message that explains their findings (see :func:`derbyxl.checks.check_register_source`).
    other_register: str | None = None

    def not_returned(self, portfolios: Iterable[str]) -> list[str]:
        """Those of ``portfolios`` (a register's, in its order) that no file here returns
        for the quarter checked, valid or not: who has still to send anything. A file for
        another quarter, or one whose portfolio could not be told, returns none (nor does
        any file when no quarter was checked)."""
        returned = self.by_portfolio()
        return [p for p in portfolios if p not in returned]

    def by_portfolio(self) -> dict[str, list[FileReport]]:
        """The files for the quarter checked, by portfolio: :func:`returns_by_portfolio`."""
        return returns_by_portfolio(self.files, self.period)

    @property
    def findings(self) -> list[Finding]:
        return [f for fr in self.files for f in fr.findings]

    @property
    def valid(self) -> bool:
        return all(fr.valid for fr in self.files)

    @property
    def stats(self) -> dict:
        return {
            "files": len(self.files),
            "valid": sum(fr.valid for fr in self.files),
            "errors": sum(fr.errors for fr in self.files),
            "warnings": sum(fr.warnings for fr in self.files),
        }

    def records(self) -> list[dict]:
        """The findings as plain dicts with the keys of :data:`FIELDS`."""
        return [f.as_dict() for f in self.findings]

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=2, ensure_ascii=False)

    def write_json(self, fp: TextIO) -> None:
        """Write :meth:`to_json`'s text and a newline to ``fp`` a piece at a time, never
        the whole text at once (5 MB for the 13,855 findings of 3,000 returns, then copied)."""
        json.dump(self.records(), fp, indent=2, ensure_ascii=False)
        fp.write("\n")

    def to_summary(self) -> list[dict]:
        return [
            {
                "workbook": fr.workbook,
                "portfolio": fr.portfolio,
                "period": fr.period,
                "items": fr.items,
                "errors": fr.errors,
                "warnings": fr.warnings,
                "valid": fr.valid,
            }
            for fr in self.files
        ]


def returns_by_portfolio(files: Iterable[FileReport], period: str | None) -> dict[str, list[FileReport]]:
    """The files (valid or not) that name a portfolio and the quarter ``period``, however
    either writes it, grouped by portfolio in their order. None for a period: none."""
    quarter = period_key(period)
    out: dict[str, list[FileReport]] = {}
    for fr in files:
        if fr.portfolio and quarter and period_key(fr.period) == quarter:
            out.setdefault(fr.portfolio, []).append(fr)
    return out


def sort_key(f: Finding):
    return (f.workbook, f.sheet or "", _cell_order(f.cell), f.code)


def _cell_order(cell: str | None):
    if not cell:
        return (0, 0)
    letters = "".join(ch for ch in cell if ch.isalpha())
    digits = "".join(ch for ch in cell if ch.isdigit())
    col = 0
    for ch in letters:
        col = col * 26 + ord(ch.upper()) - 64
    return (int(digits or 0), col)


def flatten(findings: Iterable[Finding]) -> list[tuple]:
    """Compact tuples ``(sheet, cell, code)`` for tests to compare against."""
    return [(f.sheet, f.cell, f.code) for f in findings]
