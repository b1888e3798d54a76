"""Filling templates with answers, as an officer would in Excel: used by ``derbyxl demo`` to
run the whole quarter on the bundled sample, and by the tests and the benchmark.

Values go in the way Excel stores what people type: numbers as numbers, a percent cell's 7.4%
as 0.074, dates as dates, and text as text (never as a formula).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path
from typing import Mapping

from derbyxl.register import header_key, sample_answers_path
from derbyxl.safe_openpyxl import load_workbook
from derbyxl.spec import COVER_SHEET, SHEETS, SIGN_OFF


def load_answers(path: str | Path | None = None) -> dict[str, dict]:
    """Answers by ref from a CSV with columns Ref, Actual, Note, Status, Likelihood, Impact,
    Commentary (the bundled sample's published Q4 2024/25 answers by default)."""
    path = Path(path) if path else sample_answers_path()
    out = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            ans = {}
            for key in ("Actual", "Likelihood", "Impact"):
                v = (row.get(key) or "").strip()
                if v:
                    ans[key.lower()] = float(v) if key == "Actual" else int(float(v))
            for key in ("Note", "Status", "Commentary"):
                v = (row.get(key) or "").strip()
                if v:
                    ans[key.lower()] = v
            out[row["Ref"].strip()] = ans
    return out


def set_text(cell, text: str) -> None:
    """Store text as text: openpyxl would otherwise make '=...' a formula."""
    cell.value = text
    cell.data_type = "s"


def fill_return(
    template: str | Path,
    answers: Mapping[str, Mapping],
    out: str | Path,
    *,
    signed_by: str | None = "Service lead",
    signed_date: dt.date | None = dt.date(2025, 4, 22),
) -> Path:
    """Copy ``template`` to ``out`` with the answers typed in, by header and ref.

    Args:
        template: a generated return template.
        answers: by ref, a mapping with any of ``actual, note, status, likelihood, impact,
            commentary`` (raw values: a string is typed as a string).
        out: where to save the filled return.
        signed_by, signed_date: the Cover sheet's sign-off; ``None`` leaves it blank.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if Path(template).resolve() != out.resolve():
        shutil.copyfile(template, out)
    wb = load_workbook(out)
    for spec in SHEETS:
        if spec.name not in wb.sheetnames:
            continue
        ws = wb[spec.name]
        header = [header_key(c.value) for c in ws[1]]
        col = {c.key: header.index(header_key(c.caption)) + 1 for c in spec.columns if header_key(c.caption) in header}
        for r in range(2, ws.max_row + 1):
            ref = ws.cell(r, col["ref"]).value
            ans = answers.get(str(ref).strip()) if ref is not None else None
            if not ans:
                continue
            for c in spec.inputs:
                if c.key in ans and c.key in col and ans[c.key] is not None:
                    cell = ws.cell(r, col[c.key])
                    v = ans[c.key]
                    if isinstance(v, str):
                        set_text(cell, v)
                    else:
                        cell.value = v
    if COVER_SHEET in wb.sheetnames:
        ws = wb[COVER_SHEET]
        values = {"completed_by": signed_by, "signed_date": signed_date, "approved_by": signed_by}
        for s in SIGN_OFF:
            v = values.get(s.key)
            if v is not None:
                ws[s.cell].value = v
    wb.save(out)
    return out
