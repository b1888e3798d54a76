"""Reading a returned workbook by header name, using the same sheet definitions that wrote it.

Only files that passed :func:`derbyxl.guard.scan` reach this module: python-calamine is fast but
aborts the process on a grid it cannot allocate, and the scan bounds the grid first.

Rows are found by their Ref, not by position, so a sorted or filtered sheet reads the same.
A data block may have a blank row or two in it (a cleared row); content after a longer gap is
treated as stray (notes typed far below the table) unless its Ref is one of the portfolio's.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import python_calamine as calamine
from xlsxwriter.utility import xl_col_to_name

from derbyxl.register import cell_text, header_key
from derbyxl.spec import COVER_SHEET, SHEETS, SIGN_OFF, STAMP_SHEET, SheetSpec

#: Blank rows tolerated inside the data block before what follows counts as stray.
GAP = 3
#: How far down to look for the header row, in case someone inserted a title row.
HEADER_SEARCH_ROWS = 10


class ReadError(Exception):
    """The workbook could not be read at all (carries a finding code and message, and the
    sheet that could not be read when it was one)."""

    def __init__(self, code: str, message: str, sheet: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.sheet = sheet


@dataclass
class RawRow:
    """One item row as typed: the 0-based row index, the raw value of each column by key
    (an empty cell is None) and the Ref as tidy text."""

    index: int
    values: dict
    ref: str = ""


@dataclass
class RawSheet:
    """A return sheet as found: where each column is, its rows, and anything odd."""

    spec: SheetSpec
    header_index: int | None = None
    columns: dict[str, int] = field(default_factory=dict)
    missing_columns: list[str] = field(default_factory=list)
    rows: list[RawRow] = field(default_factory=list)
    stray: list[RawRow] = field(default_factory=list)
    merged: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    hidden: bool = False
    letters: dict[str, str] = field(default_factory=dict)  # column letters by key

    def cell(self, row: RawRow, key: str) -> str | None:
        """The A1 reference of a column's cell in a row (None when the column is missing)."""
        letters = self.letters.get(key)
        return None if letters is None else f"{letters}{row.index + 1}"


@dataclass
class RawReturn:
    """Everything read from one return, before any checking."""

    path: Path
    sheet_names: list[str]
    stamp: dict[str, str] | None
    sign_off: dict[str, object]
    sheets: dict[str, RawSheet]


_ref_text = cell_text
#: header_key for the texts of cells: the same captions come back in every return.
_key = functools.lru_cache(maxsize=4096)(header_key)
#: The sign-off captions on the Cover sheet, by their key.
_SIGN_OFF_CAPTIONS = {header_key(s.caption): s.key for s in SIGN_OFF}


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "")


def _rows(sheet, max_rows: int) -> list[list]:
    return sheet.to_python(skip_empty_area=False, nrows=max_rows)


def read_return(path: str | Path, max_rows: int = 20_000, known_refs: set[str] | None = None) -> RawReturn:
    """Read a (pre-scanned) return.

    Args:
        path: the workbook.
        max_rows: rows read per sheet at most.
        known_refs: refs that count as items even after a gap (the portfolio's refs).

    Raises:
        ReadError: when calamine cannot open the workbook.
    """
    path = Path(path)
    try:
        wb = calamine.CalamineWorkbook.from_path(str(path))
    except calamine.PasswordError as exc:
        raise ReadError("password-protected", str(exc)) from exc
    except (calamine.CalamineError, calamine.ZipError, calamine.XmlError, OSError, ValueError) as exc:
        raise ReadError("corrupt-file", "its parts are not laid out as a spreadsheet program saves them (a part is missing, misnamed or damaged)" + _reader_said(exc)) from exc
    except BaseException as exc:  # noqa: BLE001 - calamine raises assorted types; a Rust panic is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise ReadError("corrupt-file", f"it could not be opened ({type(exc).__name__}: {exc})") from exc
    reading = None  # the sheet being read, for the message if it cannot be
    try:
        names = list(wb.sheet_names)
        visibility = {m.name: m.visible == calamine.SheetVisibleEnum.Visible for m in wb.sheets_metadata}
        stamp = None
        if STAMP_SHEET in names:
            stamp = {}
            reading = STAMP_SHEET
            for row in _rows(wb.get_sheet_by_name(STAMP_SHEET), 50):
                if len(row) >= 2 and isinstance(row[0], str) and row[0]:
                    stamp[row[0]] = _ref_text(row[1])
        reading = COVER_SHEET
        sign_off = _read_sign_off(wb, names)
        sheets = {}
        by_key = {header_key(n): n for n in names}
        for spec in SHEETS:
            actual_name = spec.name if spec.name in names else by_key.get(header_key(spec.name))
            if actual_name is None:
                continue
            reading = actual_name
            sheet = wb.get_sheet_by_name(actual_name)
            raw = _read_sheet(spec, _rows(sheet, max_rows), known_refs or set())
            raw.merged = list(sheet.merged_cell_ranges or [])
            raw.hidden = not visibility.get(actual_name, True)
            sheets[spec.name] = raw
    except ReadError:
        raise
    except BaseException as exc:  # noqa: BLE001 - a damaged sheet part surfaces here, maybe as a Rust panic
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        where = f"sheet '{reading}'" if reading else "a sheet"
        raise ReadError("corrupt-file", f"{where} is damaged or written in a way the reader does not follow" + _reader_said(exc), sheet=reading) from exc
    finally:
        wb.close()
    return RawReturn(path, names, stamp, sign_off, sheets)


def _reader_said(exc: BaseException) -> str:
    """The reader's own words, for --debug only: officers get the plain ones and the hint."""
    if os.environ.get("DERBYXL_DEBUG") == "1":
        return f" (python-calamine: {type(exc).__name__}: {exc})"
    return ""


def _read_sign_off(wb, names) -> dict[str, object]:
    out: dict[str, object] = {}
    if COVER_SHEET not in names:
        return out
    captions = _SIGN_OFF_CAPTIONS
    for row in _rows(wb.get_sheet_by_name(COVER_SHEET), 60):
        for i, v in enumerate(row[:-1]):
            key = captions.get(_key(v)) if v.__class__ is str and v else None
            if key and key not in out:
                value = row[i + 1]
                out[key] = None if _blank(value) else value
    return out


def _read_sheet(spec: SheetSpec, grid: list[list], known_refs: set[str]) -> RawSheet:
    raw = RawSheet(spec)
    wanted = {header_key(c.caption): c.key for c in spec.columns}
    for r, row in enumerate(grid[:HEADER_SEARCH_ROWS]):
        keys = [_key(v) if v.__class__ is str else "" for v in row]
        if "ref" in keys:
            raw.header_index = r
            for c, k in enumerate(keys):
                if k in wanted and wanted[k] not in raw.columns:
                    raw.columns[wanted[k]] = c
            break
    if raw.header_index is None:
        raw.missing_columns = [c.caption for c in spec.columns if c.role != "formula"]
        return raw
    raw.missing_columns = [c.caption for c in spec.columns if c.role != "formula" and c.key not in raw.columns]
    raw.letters = {key: xl_col_to_name(c) for key, c in raw.columns.items()}
    gap = 0
    in_block = True
    columns = list(raw.columns.items())
    inputs = [c.key for c in spec.inputs]
    for r in range(raw.header_index + 1, len(grid)):
        row = grid[r]
        if _row_blank(row):
            gap += 1
            if gap > GAP:
                in_block = False
            continue
        gap = 0
        width = len(row)
        values = {}
        for key, c in columns:
            v = row[c] if c < width else None
            values[key] = None if v == "" else v
        item = RawRow(r, values, _ref_text(values.get("ref")))
        if in_block or item.ref in known_refs:
            if item.ref or any(not _blank(values.get(key)) for key in inputs):
                raw.rows.append(item)
        else:
            raw.stray.append(item)
    return raw


def _row_blank(row: list) -> bool:
    for v in row:
        if v is None or v == "" or (v.__class__ is str and not v.strip()):
            continue
        return False
    return True


def as_date(value) -> dt.date | None:
    """A sign-off date as a date, whether Excel stored a date, a serial number or text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, (int, float)) and 20000 < value < 80000:
        # Excel's 1900 date system counts from 1899-12-30 once its fictional 29 Feb 1900 is passed.
        return dt.date(1899, 12, 30) + dt.timedelta(days=int(value))
    if isinstance(value, str):
        for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y"):
            try:
                return dt.datetime.strptime(value.strip(), fmt).date()
            except ValueError:
                continue
    return None
