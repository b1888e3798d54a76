"""Small helpers shared by every workbook derbyxl writes."""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

#: Leading characters that make Excel or LibreOffice treat typed text as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(text: str) -> bool:
    return isinstance(text, str) and text.startswith(FORMULA_TRIGGERS)


def write_text(ws, row: int, col: int, text, fmt=None):
    """Write a value as plain text with xlsxwriter, never as a formula, number or URL.

    ``worksheet.write()`` would turn ``=HYPERLINK(...)`` into a live formula and ``http://`` into
    a link; ``write_string`` stores the characters as they are, which is what untrusted text
    (commentary from returns) must get.
    """
    if text is None or text == "":
        return ws.write_blank(row, col, None, fmt)
    return ws.write_string(row, col, str(text)[:32767], fmt)


def write_number(ws, row: int, col: int, value, fmt=None):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ws.write_blank(row, col, None, fmt)
    return ws.write_number(row, col, float(value), fmt)


def row_height(texts_and_widths, base: float = 15.0, cap: int = 12) -> float | None:
    """An estimate of the height a row of wrapped text needs, or ``None`` for the default.

    Excel does not measure wrapped text when a file is opened by another program, and LibreOffice
    prints what the file says, so the writer sets heights itself.
    """
    lines = 1
    for text, width in texts_and_widths:
        if not text:
            continue
        per_line = max(1, int(width * 1.15))
        n = sum(max(1, math.ceil(len(part) / per_line)) for part in str(text).split("\n"))
        lines = max(lines, n)
    lines = min(lines, cap)
    return None if lines == 1 else base * lines


class NotReplaced(OSError):
    """The finished file could not take the place of what is at its name: on Windows, a file
    open in Excel; anywhere, a folder of that name. What was there is untouched."""


@contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path beside ``target``; on success rename it over ``target``.

    The rename is atomic on one file system, so a reader (or a crash) sees either the old file
    or the new one, never half of one. On failure the temporary file is removed.

    Raises:
        NotReplaced: when the rename fails (what the block raises passes through as it is).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.part-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise NotReplaced(exc.errno, exc.strerror, str(target)) from exc
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
