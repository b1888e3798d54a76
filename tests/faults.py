"""Building faulty returns from good ones, the way officers break them."""

from __future__ import annotations

import warnings
from pathlib import Path

from derbyxl.demo import set_text
from derbyxl.safe_openpyxl import load_workbook


def mutate(src: Path, dst: Path, change) -> Path:
    """Copy a return through openpyxl, applying ``change(workbook)`` on the way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wb = load_workbook(src)
    change(wb)
    wb.save(dst)
    return dst


def row_of(ws, ref: str) -> int:
    for r in range(1, ws.max_row + 1):
        if ws.cell(r, 1).value == ref:
            return r
    raise KeyError(ref)


def col_of(ws, caption: str) -> int:
    return [c.value for c in ws[1]].index(caption) + 1


def set_input(wb, sheet: str, ref: str, caption: str, value):
    ws = wb[sheet]
    cell = ws.cell(row_of(ws, ref), col_of(ws, caption))
    if isinstance(value, str):
        set_text(cell, value)
    else:
        cell.value = value
    return cell.coordinate
