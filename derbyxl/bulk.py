"""Rows of the master's big sheets, streamed straight into the workbook's XML.

xlsxwriter spends about 3 microseconds on each cell; a master of 1,000 returns has 3.6 million
cells in its Data sheet alone. So the big sheets are laid out by xlsxwriter as usual (header
row, widths, table, conditional formats, print setup, styles) with their data rows left out,
into memory; then :meth:`Splicer.save` copies that workbook to its destination, streaming each
big sheet's rows into its ``<sheetData>`` as it goes. The rows are plain SpreadsheetML: numbers
as ``<v>``, text as inline strings (text, never formulas), styles by the xlsxwriter formats'
own indices. Compression runs in a second thread (zlib releases the GIL) while the rows are
rendered.

A hand-written part kept for its measured margin: for 1,000 returns, xlsxwriter alone (in its
constant_memory mode, the library's fastest) takes 15.0 s to write the Data sheet's cells,
while the whole consolidation, this included, takes 8.5 s (bench/README.md, "floor: xlsxwriter
write"): about 2.8x for the sheet itself.

    splicer = Splicer()
    wb = xlsxwriter.Workbook(splicer.buffer, {"in_memory": True})
    ws = wb.add_worksheet("Data")            # header row, table and formats as usual
    splicer.add(ws, rows_xml, last_row=n, last_col=17)
    wb.close()
    splicer.save(path)
"""

from __future__ import annotations

import io
import math
import queue
import re
import threading
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

from xlsxwriter.utility import xl_col_to_name

from derbyxl.spec import MAX_TEXT

#: Characters XML 1.0 cannot hold; Excel shows them escaped as _xHHHH_, as xlsxwriter writes them.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DIMENSION = re.compile(rb'<dimension ref="[^"]*"/>')
#: zlib level for the big sheets: level 1 is about 3x faster than 6, for files about 20% larger.
COMPRESS_LEVEL = 1
#: Rows rendered per piece handed to the compressing thread.
ROWS_PER_PIECE = 1000


def style_index(fmt) -> int:
    """The cell style (xf) index xlsxwriter gives a format, registering it for styles.xml.

    This is xlsxwriter's own (private) ``_get_xf_index``, the call it makes when a cell is
    written with the format; tests read the master back to check the styles landed."""
    return 0 if fmt is None else fmt._get_xf_index()


class RowRenderer:
    """Turns rows of values into ``<row>`` elements for a sheet of ``ncols`` columns."""

    #: Short texts (a kind, a portfolio, a status) repeat down a sheet: their markup after the
    #: cell reference is kept, up to this many per renderer.
    TEXT_CACHE = 20_000

    def __init__(self, ncols: int):
        self.prefixes = [f'<c r="{xl_col_to_name(c)}' for c in range(ncols)]
        self._style_attrs: dict[tuple, list[str]] = {}  # styles of a row -> ' s="N"' per cell
        self._texts: dict[tuple[str, str], str] = {}  # (text, style attribute) -> markup after the reference

    def row(self, r: int, values: Sequence, styles: Sequence[int | None], height: float | None = None) -> str:
        """One row (0-based ``r``): None leaves a cell empty (but styled when it has a style),
        str is written as text, int/float as a number (non-finite numbers are left empty)."""
        n = str(r + 1)
        parts = [f'<row r="{n}" ht="{height:g}" customHeight="1">' if height else f'<row r="{n}">']
        add = parts.append
        key = tuple(styles)
        attrs = self._style_attrs.get(key)
        if attrs is None:
            attrs = self._style_attrs[key] = [f' s="{s}"' if s else "" for s in key]
        texts = self._texts
        for prefix, v, style in zip(self.prefixes, values, attrs):
            if v is None or v == "":
                if style:
                    add(f'{prefix}{n}"{style}/>')
                continue
            cls = v.__class__
            if cls is str:
                tail = texts.get((v, style))
                if tail is None:
                    tail = _text_markup(v, style)
                    if len(v) <= 64 and len(texts) < self.TEXT_CACHE:
                        texts[(v, style)] = tail
                add(f"{prefix}{n}{tail}")
            elif cls is int or (cls is float and math.isfinite(v)):
                add(f'{prefix}{n}"{style}><v>{v!r}</v></c>')
            elif cls is not bool and isinstance(v, (int, float)) and math.isfinite(v):
                add(f'{prefix}{n}"{style}><v>{float(v)!r}</v></c>')  # numpy and other number types
            elif style:
                add(f'{prefix}{n}"{style}/>')
        add("</row>")
        return "".join(parts)


def _text_markup(v: str, style: str) -> str:
    """A text cell's markup after its reference: style, inline string, escaped text."""
    if len(v) > MAX_TEXT:
        v = v[:MAX_TEXT]
    if "&" in v or "<" in v or ">" in v:
        v = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if not v.isprintable() and _CONTROL.search(v):  # isprintable: a quick first look
        v = _CONTROL.sub(_escape_control, v)
    if v[0] in _SPACE or v[-1] in _SPACE:
        return f'"{style} t="inlineStr"><is><t xml:space="preserve">{v}</t></is></c>'
    return f'"{style} t="inlineStr"><is><t>{v}</t></is></c>'


_SPACE = " \t\n\r"


class Splicer:
    """Collects the big sheets' rows and writes the finished workbook."""

    def __init__(self):
        self.buffer = io.BytesIO()
        self._sheets: dict[str, tuple[Callable[[], Iterable[str]], int, int]] = {}
        self._tables: dict[str, tuple[str, str]] = {}

    def add(self, ws, rows: Callable[[], Iterable[str]], last_row: int, last_col: int) -> None:
        """Stream ``rows()`` (``<row>`` elements, after any rows xlsxwriter wrote) into ``ws``.
        ``last_row`` and ``last_col`` (0-based) bound the sheet's used range."""
        self._sheets[ws.get_name()] = (rows, last_row, last_col)

    def resize_table(self, name: str, written: str, full: str) -> None:
        """Make table ``name``, added to xlsxwriter over the small range ``written`` (say
        ``A1:R2``: xlsxwriter keeps a note of every cell of a table's range, which is slow and
        large for 200,000 rows), cover ``full`` in the file."""
        self._tables[name] = (written, full)

    def save(self, path: str | Path) -> None:
        """Write the workbook that xlsxwriter left in :attr:`buffer` to ``path``, with the rows.
        When a row source fails part way, what was written of ``path`` is removed."""
        try:
            self._save(path)
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise

    def _save(self, path: str | Path) -> None:
        from derbyxl.guard import sheet_parts  # the mapping of sheet names to parts the scan uses

        self.buffer.seek(0)
        with zipfile.ZipFile(self.buffer) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as dst:
            parts = sheet_parts(src, set(src.namelist()))
            spliced = {parts[name]: spec for name, spec in self._sheets.items()}
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename.startswith("xl/tables/"):
                    data = self._resized(data)
                if info.filename not in spliced:
                    dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
                    continue
                rows, last_row, last_col = spliced[info.filename]
                _splice(dst, info.filename, data, rows(), last_row, last_col)

    def _resized(self, xml: bytes) -> bytes:
        for name, (written, full) in self._tables.items():
            if f'displayName="{name}"'.encode() in xml:
                return xml.replace(f'ref="{written}"'.encode(), f'ref="{full}"'.encode())
        return xml


def _splice(dst: zipfile.ZipFile, name: str, xml: bytes, rows: Iterable[str], last_row: int, last_col: int) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    if hasattr(zipfile.ZipInfo, "compress_level"):  # public from Python 3.13
        info.compress_level = COMPRESS_LEVEL
    else:  # 3.11 and 3.12: zipfile reads a streamed part's level only from here
        info._compresslevel = COMPRESS_LEVEL
    end = xml.rfind(b"</sheetData>")
    if end < 0:
        raise ValueError(f"{name}: no <sheetData> to add rows to (write a header row first)")
    ref = f"A1:{xl_col_to_name(last_col)}{last_row + 1}".encode()
    head = _DIMENSION.sub(b'<dimension ref="' + ref + b'"/>', xml[:end], count=1)
    pieces: queue.Queue = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def compress():
        try:
            with dst.open(info, "w", force_zip64=True) as fh:
                while (piece := pieces.get()) is not None:
                    fh.write(piece)
        except BaseException as exc:  # noqa: BLE001 - handed back to the rendering thread
            failure.append(exc)
            while pieces.get() is not None:
                pass

    worker = threading.Thread(target=compress, name="derbyxl-compress")
    worker.start()
    try:
        pieces.put(head)
        batch: list[str] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= ROWS_PER_PIECE:
                pieces.put(_encode(batch))
                batch = []
                if failure:
                    break
        if batch:
            pieces.put(_encode(batch))
        pieces.put(xml[end:])
    finally:
        pieces.put(None)
        worker.join()
    if failure:
        raise failure[0]


def _escape_control(m: re.Match) -> str:
    return f"_x{ord(m.group()):04X}_"


def _encode(rows: list[str]) -> bytes:
    return "".join(rows).encode("utf-8", "replace")
