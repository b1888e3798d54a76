"""A cheap pre-scan of an untrusted workbook, before any real reader touches it.

python-calamine reads returns many times faster than openpyxl, but a workbook with a single cell
at XFD1048576 makes it allocate the whole grid and abort the process (SIGABRT, which Python
cannot catch). So every file first passes through :func:`scan`, which looks at the raw zip:
its size and entries, its content types, any DTD (entity bombs, external entities), external
links, and the position of every cell reference, streaming each sheet's XML in chunks with a
byte limit. Only files that pass are handed to calamine.

The scan also collects what calamine does not report: cells holding Excel error values
(``#REF!``, ``#DIV/0!``), which calamine returns as empty strings.
"""

from __future__ import annotations

import datetime as dt
import html
import posixpath
import re
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from defusedxml import ElementTree as SafeET
from xlsxwriter.utility import xl_col_to_name

from derbyxl.findings import Finding, finding


@dataclass(frozen=True)
class Limits:
    """Bounds on the work done for one returned file. All are checked before expensive work."""

    max_file_bytes: int = 20_000_000
    max_uncompressed_bytes: int = 150_000_000
    max_entries: int = 1_000
    max_compression_ratio: int = 200
    max_rows: int = 20_000
    max_cols: int = 100
    max_cells: int = 500_000
    max_seconds: float = 30.0


DEFAULT_LIMITS = Limits()

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_WORKBOOK_CT = b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_MACRO_CT = b"application/vnd.ms-excel.sheet.macroEnabled.main+xml"
_CELL = re.compile(rb"<(?:\w+:)?c\b([^>]*)>")
_ROW = re.compile(rb"<(?:\w+:)?row\b([^>]*)>")
_ROW_R = re.compile(rb'\br="([0-9]{1,8})"')
_ATTR_R = re.compile(rb'\br="([A-Z]{1,3})([0-9]{1,7})"')
_ATTR_T_ERROR = re.compile(rb'\bt="e"')
# The quick path of the sheet scan: cells written as <c r="A1"...> and rows as <row r="1"...>
# by every common writer. A cell or row element that does not start so (a prefix, no
# reference, another attribute first) sends the piece to the careful scan.
_ODD_TAG = rb'<(?:\w+:(?:c|row)|c(?! r="[A-Z]{1,3}[0-9]{1,7}")|row(?! r="[0-9]{1,8}"))[\s>/]'
_FAST_ERROR = re.compile(rb'<c r="([A-Z]{1,3}[0-9]{1,7})"[^>]*\bt="e"')
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_ROW_CLOSED = re.compile(rb"\s*</(?:\w+:)?row\s*>")
_CHUNK = 1 << 20
#: What reading a damaged zip can raise: a bad header, a version it does not know
#: (NotImplementedError, a RuntimeError), a broken deflate stream (zlib.error), a short file.
_ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, zlib.error)
_NS_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


@dataclass
class ScanResult:
    """What the pre-scan learned. ``ok`` is False when the file must not be read further."""

    findings: list[Finding] = field(default_factory=list)
    sheets: dict[str, str] = field(default_factory=dict)  # sheet name -> part name
    error_cells: dict[str, set[str]] = field(default_factory=dict)  # sheet name -> {"G5", ...}
    ok: bool = True
    #: When the workbook says it was last saved, ISO 8601 in UTC (None: it does not say).
    saved_at: str | None = None
    #: Merged cells by sheet, ((row, col), (last row, last col)) 0-based, where the reader
    #: does not report them (python-calamine does not for OpenDocument files).
    merged: dict[str, list] = field(default_factory=dict)


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


def _sniff_type(head: bytes, suffix: str) -> tuple[str, str]:
    if head.startswith(b"%PDF"):
        return "wrong-file-type", "it is a PDF document"
    if head[:4] in (b"\x89PNG", b"GIF8") or head[:3] == b"\xff\xd8\xff":
        return "wrong-file-type", "it is a picture"
    if head.lstrip().startswith((b"<?xml", b"<html", b"<!DOCTYPE", b"<HTML")):
        return "wrong-file-type", "it is an XML or web page file, not a workbook"
    try:
        head.decode("utf-8")
        return "wrong-file-type", "it is a text file (perhaps a CSV saved with an .xlsx name)"
    except UnicodeDecodeError:
        return "wrong-file-type", f"its contents are not a workbook (it was named {suffix or 'without an extension'})"


def scan(path: str | Path, limits: Limits = DEFAULT_LIMITS, workbook: str | None = None) -> ScanResult:
    """Pre-scan a returned file. Never raises for a bad file: problems become findings.

    Args:
        path: the returned file.
        limits: the bounds to enforce.
        workbook: the name findings should use (the file name by default).

    Returns:
        A :class:`ScanResult`; when ``ok`` is False, its findings say why.
    """
    path = Path(path)
    name = workbook or path.name
    res = ScanResult()

    def stop(code, message=None, **kw):
        res.findings.append(finding(code, name, message, **kw))
        res.ok = False
        return res

    started = time.monotonic()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return stop("file-missing", str(path))
    except OSError as exc:
        return stop("corrupt-file", f"it could not be opened ({exc.strerror or exc})")
    if not path.is_file():
        return stop("wrong-file-type", "it is not a regular file")
    if size == 0:
        return stop("file-empty")
    if size > limits.max_file_bytes:
        return stop("file-too-large", f"{size:,} bytes, over the limit of {limits.max_file_bytes:,}")
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_OLE_MAGIC):
        with open(path, "rb") as fh:
            blob = fh.read()
        if _ENCRYPTED in blob:
            return stop("password-protected")
        return stop("legacy-xls", "the file is in the Excel 97-2003 format" + (" but named .xlsx" if suffix == ".xlsx" else ""))
    if suffix == ".xlsm":
        return stop("macro-workbook", "the file is named .xlsm")
    if suffix in (".xls", ".xlsb", ".csv", ".pdf", ".txt", ".docx"):
        return stop("wrong-file-type", f"the file is named {suffix}")
    if not head.startswith(b"PK"):
        code, why = _sniff_type(open(path, "rb").read(512), suffix)
        return stop(code, why)
    if suffix not in (".xlsx", ".ods"):
        return stop("wrong-file-type", f"the file is named {suffix or 'without an extension'}")

    try:
        zf = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        return stop("corrupt-file", f"its zip archive cannot be read ({exc})")
    with zf:
        try:
            infos = zf.infolist()
        except Exception as exc:  # noqa: BLE001 - any failure to list means a damaged archive
            return stop("corrupt-file", str(exc))
        if len(infos) > limits.max_entries:
            return stop("zip-bomb", f"{len(infos):,} parts, over the limit of {limits.max_entries:,}")
        total = sum(i.file_size for i in infos)
        if total > limits.max_uncompressed_bytes:
            return stop("zip-bomb", f"{total:,} bytes uncompressed, over the limit of {limits.max_uncompressed_bytes:,}")
        for i in infos:
            if i.compress_size and i.file_size > 1_000_000 and i.file_size / i.compress_size > limits.max_compression_ratio:
                return stop("zip-bomb", f"part {i.filename} compresses {i.file_size / i.compress_size:,.0f} to 1")
            if i.flag_bits & 0x1:
                return stop("password-protected", "its parts are encrypted")
        names = {i.filename for i in infos}
        opendocument = _opendocument_type(zf, names)
        if suffix == ".ods" or opendocument:
            if suffix != ".ods":
                # calamine picks its reader by the extension: an .ods named .xlsx cannot be read.
                return stop("wrong-file-type", f"it is an OpenDocument spreadsheet (as LibreOffice saves one) named {suffix}; rename it to .ods, or save it as Excel Workbook (.xlsx)")
            return _scan_opendocument(zf, names, opendocument, res, stop, limits, started)
        if "xl/vbaProject.bin" in names:
            return stop("macro-workbook", "it contains a VBA project")
        if "[Content_Types].xml" not in names:
            return stop("missing-part", "[Content_Types].xml is missing")
        if "xl/workbook.xml" not in names:
            return stop("missing-part", _where_the_workbook_is(zf, names))
        try:
            ct = zf.read("[Content_Types].xml")
            if _DTD.search(ct):
                return stop("xml-forbidden", "[Content_Types].xml declares a DTD or entities")
            if _MACRO_CT in ct:
                return stop("macro-workbook", "its content type is macro-enabled")
            if _WORKBOOK_CT not in ct:
                return stop("wrong-file-type", "its content type is not an Excel workbook")
            sheets = sheet_parts(zf, names)
        except _Stop as exc:
            return stop(exc.code, exc.message)
        except (*_ZIP_ERRORS, KeyError, SafeET.ParseError) as exc:
            return stop("corrupt-file", f"its workbook part cannot be read ({exc})")
        except Exception as exc:  # noqa: BLE001 - defusedxml raises its own types for DTDs and entities
            if type(exc).__module__.startswith("defusedxml"):
                return stop("xml-forbidden", f"the workbook part declares entities ({type(exc).__name__})")
            return stop("corrupt-file", f"its workbook part cannot be read ({exc})")
        res.sheets = sheets
        if any(n.startswith("xl/externalLinks/") for n in names):
            res.findings.append(finding("external-link", name, "links to other workbooks were not followed"))
        for sheet_name, part in sheets.items():
            if part not in names:
                return stop("missing-part", f"the part for sheet '{sheet_name}' ({part}) is missing")
            try:
                errors = _scan_sheet(zf, part, sheet_name, limits)
            except _Stop as exc:
                return stop(exc.code, exc.message, sheet=sheet_name)
            except _ZIP_ERRORS as exc:
                return stop("corrupt-file", f"sheet '{sheet_name}' cannot be read ({exc})", sheet=sheet_name)
            if errors:
                res.error_cells[sheet_name] = errors
            if time.monotonic() - started > limits.max_seconds:
                return stop("time-limit", f"over {limits.max_seconds:g} s")
        if "xl/styles.xml" in names:
            try:
                with zf.open("xl/styles.xml") as fh:
                    if _DTD.search(fh.read(4096)):
                        return stop("xml-forbidden", "xl/styles.xml declares a DTD or entities")
            except _ZIP_ERRORS as exc:
                return stop("corrupt-file", f"xl/styles.xml cannot be read ({exc})")
        for part in sorted(n for n in names if n.lower() == "xl/sharedstrings.xml"):
            try:
                data = zf.read(part)
            except _ZIP_ERRORS as exc:
                return stop("corrupt-file", f"{part} cannot be read ({exc})")
            if _DTD.search(data[:4096]):
                return stop("xml-forbidden", f"{part} declares a DTD or entities")
            # calamine sets aside room for as many strings as the part's root declares, at
            # once: a count of 4,000,000,000 asks for 96 GB and aborts the process. A count
            # that neither the part's bytes could hold nor the sheets' cells could use is a
            # lie (a writer that merely overstates it a little, as some do, does no harm).
            claimed = claimed_strings(data)
            most = max(len(data) // len(b"<si/>"), limits.max_cells * max(1, len(sheets)))
            if claimed is not None and claimed > most:
                return stop("zip-bomb", f"its shared strings part claims {claimed:,} strings; its {len(data):,} bytes hold at most {len(data) // len(b'<si/>'):,}")
        res.saved_at = _saved_time(zf, _CORE, _MODIFIED)
    return res


_CORE = "docProps/core.xml"
_MODIFIED = re.compile(rb"<dcterms:modified[^>]*>([^<]{1,40})</dcterms:modified>")
_META = "meta.xml"  # an OpenDocument file's: <dc:date> is when it was last saved
_ODS_DATE = re.compile(rb"<dc:date>([^<]{1,40})</dc:date>")


def _saved_time(zf: zipfile.ZipFile, part: str, pattern: re.Pattern) -> str | None:
    """When the workbook says it was last saved (``dcterms:modified`` in docProps/core.xml,
    which Excel and LibreOffice write on every save, or ``dc:date`` in an OpenDocument file's
    meta.xml), as ISO 8601 in UTC; None when it does not say. Only a small part is read, by a
    regular expression: no XML parser meets it."""
    try:
        info = zf.getinfo(part)
        if info.file_size > 65_536:
            return None
        m = pattern.search(zf.read(info))
    except (KeyError, *_ZIP_ERRORS):
        return None
    if not m:
        return None
    try:
        when = dt.datetime.fromisoformat(m.group(1).decode("ascii").strip().replace("Z", "+00:00"))
    except (ValueError, UnicodeDecodeError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat()


_ODS_TYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# OpenDocument's grid, in content.xml: tables, rows and cells, under any namespace prefix,
# with the repeat counts that expand them (LibreOffice writes the empty rest of a sheet as one
# row repeated 1,048,553 times, holding one empty cell repeated 16,384 times).
_ODS_GRID = re.compile(
    rb"<(?:[\w.-]+:)?(?:(table)|(table-row)|(covered-table-cell|table-cell))(?=[\s>/])([^>]*)>|</(?:[\w.-]+:)?(table-row|table)>"
)
_ODS_NAME = re.compile(rb"""(?:^|\s)(?:[\w.-]+:)?name\s*=\s*(["'])(.*?)\1""")
_ODS_ERROR = re.compile(rb"""value-type\s*=\s*["']error""")
_COLUMNS_SPANNED = re.compile(rb"""number-columns-spanned\s*=\s*["']\s*([0-9]{1,12})""")
_ROWS_SPANNED = re.compile(rb"""number-rows-spanned\s*=\s*["']\s*([0-9]{1,12})""")
_ROWS_REPEATED = re.compile(rb"""number-rows-repeated\s*=\s*["']\s*([0-9]{1,12})""")
_COLUMNS_REPEATED = re.compile(rb"""number-columns-repeated\s*=\s*["']\s*([0-9]{1,12})""")
_VALUE_TYPE = re.compile(rb"\bvalue-type\s*=")


def _opendocument_type(zf: zipfile.ZipFile, names: set[str]) -> bytes | None:
    """The media type an OpenDocument file declares in its first part, ``mimetype`` (None
    when it is not an OpenDocument file)."""
    if "mimetype" not in names:
        return None
    try:
        info = zf.getinfo("mimetype")
        if info.file_size > 200:
            return None
        return zf.read(info).strip()
    except _ZIP_ERRORS:
        return None


def _scan_opendocument(zf: zipfile.ZipFile, names: set[str], media: bytes | None, res: ScanResult, stop, limits: Limits, started: float) -> ScanResult:
    """The pre-scan of an OpenDocument spreadsheet (.ods): the same guarantees as for an .xlsx
    (its type, no macros, no encryption, no DTD or entities, and a grid of cells holding values
    within the limits, counting the repeats that expand rows and cells), so that calamine never
    meets a grid it cannot hold."""
    if media != _ODS_TYPE:
        what = media.decode("ascii", "replace") if media else "no media type"
        return stop("wrong-file-type", f"it is not an OpenDocument spreadsheet ({what})")
    if any(n.startswith(("Basic/", "Scripts/")) for n in names):
        return stop("macro-workbook", "it contains macros (LibreOffice Basic or scripts)")
    try:
        manifest = zf.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
        if b"encryption-data" in manifest:
            return stop("password-protected", "it is saved with a password")
        if "content.xml" not in names:
            return stop("missing-part", "content.xml is missing")
        for part in ("META-INF/manifest.xml", "styles.xml", "meta.xml", "settings.xml"):
            if part in names:
                with zf.open(part) as fh:
                    if _DTD.search(fh.read(4096)):
                        return stop("xml-forbidden", f"{part} declares a DTD or entities")
        res.sheets, res.error_cells, res.merged = _scan_ods_content(zf, limits)
    except _Stop as exc:
        return stop(exc.code, exc.message, sheet=exc.sheet)
    except _ZIP_ERRORS as exc:
        return stop("corrupt-file", f"its content cannot be read ({exc})")
    if time.monotonic() - started > limits.max_seconds:
        return stop("time-limit", f"over {limits.max_seconds:g} s")
    res.saved_at = _saved_time(zf, _META, _ODS_DATE)
    return res


def _scan_ods_content(zf: zipfile.ZipFile, limits: Limits) -> tuple[dict[str, str], dict[str, set[str]], dict[str, list]]:
    """Stream content.xml: per table, the furthest row and column holding a value (a cell with
    a value type, or with content) and the cells holding values, repeats counted; and the
    cells showing an error (LibreOffice marks them ``calcext:value-type="error"``; calamine
    may read them as 0).

    Returns:
        the sheet names, each mapped to the part holding it (content.xml), the error cells
        by sheet (A1 references) and the merged cells by sheet (``table:number-columns-spanned``
        and ``-rows-spanned``: calamine does not report them for an .ods).

    Raises:
        _Stop: for a DTD, or a grid beyond the limits.
    """
    sheets: dict[str, str] = {}
    errors: dict[str, set[str]] = {}
    merged: dict[str, list] = {}
    name = ""
    row = col = 0  # the next row of the table, the next column of the row (0-based)
    repeat = 1  # how many times the current row stands
    row_has_value = False
    max_row = max_col = cells = 0
    with zf.open("content.xml") as fh:
        for data, _last in _pieces(fh, "content.xml"):
            for m in _ODS_GRID.finditer(data):
                table, row_tag, cell_tag, attrs, end = m.groups()
                if table:
                    found = _ODS_NAME.search(attrs)
                    name = html.unescape(found.group(2).decode("utf-8", "replace")) if found else f"Sheet{len(sheets) + 1}"
                    sheets[name] = "content.xml"
                    row = col = max_row = max_col = 0
                elif row_tag:
                    r = _ROWS_REPEATED.search(attrs)
                    repeat, col, row_has_value = (int(r.group(1)) if r else 1), 0, False
                    if attrs.endswith(b"/"):
                        row += repeat
                elif cell_tag:
                    c = _COLUMNS_REPEATED.search(attrs)
                    times = int(c.group(1)) if c else 1
                    if b"spanned" in attrs and row < limits.max_rows:
                        wide, tall = _COLUMNS_SPANNED.search(attrs), _ROWS_SPANNED.search(attrs)
                        across, down = (int(wide.group(1)) if wide else 1), (int(tall.group(1)) if tall else 1)
                        if (across > 1 or down > 1) and len(merged.get(name, ())) < 1000:
                            merged.setdefault(name, []).append(((row, col), (row + down - 1, col + across - 1)))
                    col += times
                    # A cell holds something when it says what type of value, or is not empty.
                    if _VALUE_TYPE.search(attrs) or not attrs.endswith(b"/"):
                        row_has_value = True
                        cells += times * repeat
                        if col > max_col:
                            max_col = col
                        if _ODS_ERROR.search(attrs) and col <= limits.max_cols and row < limits.max_rows:
                            errors.setdefault(name, set()).add(f"{xl_col_to_name(col - times)}{row + 1}")
                elif end == b"table-row":
                    row += repeat
                    if row_has_value and row > max_row:
                        max_row = row
                    repeat, row_has_value = 1, False
                if max_row > limits.max_rows:
                    raise _Stop("sheet-too-large", f"sheet '{name}' uses row {max_row:,}; the limit is {limits.max_rows:,}", name)
                if max_col > limits.max_cols:
                    raise _Stop("sheet-too-large", f"sheet '{name}' uses column {max_col:,}; the limit is {limits.max_cols:,}", name)
                if cells > limits.max_cells:
                    raise _Stop("sheet-too-large", f"the workbook has over {limits.max_cells:,} cells", name)
    return sheets, errors, merged


def _pieces(fh, what: str):
    """A streamed XML part in pieces of about :data:`_CHUNK` bytes, each cut before its last
    ``<`` so that no tag is split between two; a DTD or entity declaration at the start is
    refused. Yields (piece, False) for each, then (the unfinished end, True).

    Raises:
        _Stop: xml-forbidden, naming ``what``.
    """
    tail = b""
    first = True
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        if first:
            if _DTD.search(chunk[:4096]):
                raise _Stop("xml-forbidden", f"{what} declares a DTD or entities")
            first = False
        data = tail + chunk
        cut = data.rfind(b"<")
        if cut <= 0:
            tail = data
            continue
        data, tail = data[:cut], data[cut:]
        yield data, False
    yield tail, True


_PROLOG = re.compile(rb"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.S)  # what may come before the root
_SST_TAG = re.compile(rb"<(?:[\w.-]+:)?sst\b([^>]*)>")
_UNIQUE_COUNT = re.compile(rb"""(?:^|\s)(?:[\w.-]+:)?uniqueCount\s*=\s*(["'])(.*?)\1""", re.S)


def claimed_strings(sst: bytes) -> int | None:
    """The number of strings a shared strings part declares (its root's ``uniqueCount``), or
    None when it declares none that reads as a number. Only the root counts: comments and
    processing instructions before it are skipped, so a comment cannot stand in for it."""
    root = _SST_TAG.match(sst, _PROLOG.match(sst).end())
    if root is None:
        return None
    count = _UNIQUE_COUNT.search(root.group(1))
    if count is None:
        return None
    # Readers may resolve character references in the value (&#52; is 4), and accept a '+'.
    value = html.unescape(count.group(2).decode("utf-8", "replace")).strip()
    try:
        return int(value)
    except ValueError:
        return None


class _Stop(Exception):
    def __init__(self, code: str, message: str, sheet: str | None = None):
        super().__init__(message)
        self.code, self.message, self.sheet = code, message, sheet


#: The relationship type of a package's main part (the workbook), in ``_rels/.rels``.
_OFFICE_DOCUMENT = "/officeDocument"
_RESAVE = "open it in Excel or LibreOffice and save it again as Excel Workbook (.xlsx), then send that file"


def _where_the_workbook_is(zf: zipfile.ZipFile, names: set[str]) -> str:
    """What is unusual about a package without ``xl/workbook.xml``, found the way Excel finds
    its workbook (the package's relationships, tolerating backslashes), for the message: the
    reader needs the workbook where Excel writes it."""
    if any("\\" in n for n in names):
        example = "xl\\workbook.xml" if "xl\\workbook.xml" in names else next(n for n in sorted(names) if "\\" in n)
        return f"its parts are stored with backslashes in their paths ({example}), as some programs other than Excel write them, and cannot be read; {_RESAVE}"
    rels_name = next((n for n in names if n.replace("\\", "/").lower() == "_rels/.rels"), None)
    target = None
    if rels_name is not None:
        try:
            rels = zf.read(rels_name)
            if not _DTD.search(rels[:4096]):
                for rel in SafeET.fromstring(rels):
                    if rel.get("Type", "").endswith(_OFFICE_DOCUMENT):
                        target = rel.get("Target", "").lstrip("/")
                        break
        except Exception:  # noqa: BLE001 - a damaged relationships part: said below as missing
            target = None
    if target and target in names:
        return f"its workbook part is {target}, not xl/workbook.xml where Excel writes it, so it cannot be read; {_RESAVE}"
    if target:
        return f"its relationships name the workbook part {target}, which is not in the file: the file is damaged or incomplete; {_RESAVE}"
    return f"xl/workbook.xml is missing and nothing names another workbook part: the file is damaged or not a complete workbook; {_RESAVE}"


def sheet_parts(zf: zipfile.ZipFile, names: set[str]) -> dict[str, str]:
    """Map each sheet's name to its XML part, from workbook.xml and its relationships."""
    wb_xml = zf.read("xl/workbook.xml")
    if _DTD.search(wb_xml[:4096]):
        raise _Stop("xml-forbidden", "xl/workbook.xml declares a DTD or entities")
    root = SafeET.fromstring(wb_xml)
    rels = {}
    if "xl/_rels/workbook.xml.rels" in names:
        rel_xml = zf.read("xl/_rels/workbook.xml.rels")
        if _DTD.search(rel_xml[:4096]):
            raise _Stop("xml-forbidden", "the workbook relationships declare a DTD or entities")
        for rel in SafeET.fromstring(rel_xml):
            target = rel.get("Target", "")
            if target.startswith("/"):
                part = target.lstrip("/")
            else:
                part = posixpath.normpath(posixpath.join("xl", target))
            rels[rel.get("Id")] = part
    out = {}
    for el in root.iter():
        if el.tag.endswith("}sheet") or el.tag == "sheet":
            rid = el.get(_NS_REL)
            if rid in rels:
                out[el.get("name", "")] = rels[rid]
    return out


def _scan_sheet(zf: zipfile.ZipFile, part: str, sheet_name: str, limits: Limits) -> set[str]:
    """Stream one sheet's XML: enforce the row, column and cell limits, note error cells."""
    max_row = max_col = cells = rows = unplaced = 0
    errors: set[str] = set()
    tail = b""
    with zf.open(part) as fh:
        for data, last in _pieces(fh, f"sheet '{sheet_name}'"):
            if last:
                tail = data
                break
            quick = _quick_scan(data, limits)
            if quick is not None:
                n_rows, n_cells, errs = quick
                rows += n_rows
                cells += n_cells
                errors.update(errs)
            else:
                for m in _ROW.finditer(data):
                    if m.group(1).endswith(b"/") or _ROW_CLOSED.match(data, m.end()):
                        # An empty row: LibreOffice writes <row r="1048576" ...></row> after a
                        # row is deleted, and readers make no cell of it. Only rows holding
                        # cells count (a cell without a reference takes its row's number).
                        continue
                    rows += 1
                    rr = _ROW_R.search(m.group(1))
                    if rr and int(rr.group(1)) > max_row:
                        max_row = int(rr.group(1))
                for m in _CELL.finditer(data):
                    cells += 1
                    attrs = m.group(1)
                    r = _ATTR_R.search(attrs)
                    if r:
                        col, row = _col_number(r.group(1)), int(r.group(2))
                        if col > max_col:
                            max_col = col
                        if row > max_row:
                            max_row = row
                        if _ATTR_T_ERROR.search(attrs):
                            errors.add((r.group(1) + r.group(2)).decode())
                    else:
                        # Readers place a cell without a reference after the previous one;
                        # assume the worst (all in one row) when bounding the grid.
                        unplaced += 1
            if unplaced > max_col:
                max_col = unplaced
            if max_row > limits.max_rows or rows > limits.max_rows:
                raise _Stop("sheet-too-large", f"sheet '{sheet_name}' uses row {max(max_row, rows):,}; the limit is {limits.max_rows:,}")
            if max_col > limits.max_cols:
                raise _Stop("sheet-too-large", f"sheet '{sheet_name}' uses column {max_col:,}; the limit is {limits.max_cols:,}")
            if cells > limits.max_cells or max(max_row, rows) * max_col > limits.max_cells * 4:
                raise _Stop("sheet-too-large", f"sheet '{sheet_name}' has over {limits.max_cells:,} cells")
    # The last piece.
    for m in _CELL.finditer(tail):
        r = _ATTR_R.search(m.group(1))
        if r:
            col, row = _col_number(r.group(1)), int(r.group(2))
            if col > limits.max_cols or row > limits.max_rows:
                raise _Stop("sheet-too-large", f"sheet '{sheet_name}' uses cell {(r.group(1) + r.group(2)).decode()}")
    return errors


def _greater_than(limit: int, digits: str, width: int) -> str:
    """A regular expression matching the numerals above ``limit`` written in ``digits`` (a
    run of them ending where the pattern ends, without leading zeros), at most ``width`` long.
    ``_greater_than(20000, "0123456789", 7)`` matches 20001 and 100000, not 20000 or 9999."""
    base = len(digits)
    text = ""
    n = limit
    while n:  # bijective for letters (A=1 ... Z=26, AA=27), plain for decimal
        if digits[0] == "0":
            text, n = digits[n % base] + text, n // base
        else:
            n -= 1
            text, n = digits[n % base] + text, n // base
    first = "1" if digits[0] == "0" else digits[0]
    any_digit = f"[{digits[0]}-{digits[-1]}]"
    parts = [f"[{first}-{digits[-1]}]{any_digit}{{{len(text)},{width - 1}}}"] if len(text) < width else []
    for i, ch in enumerate(text):
        higher = digits[digits.index(ch) + 1 :]
        if higher:
            parts.append(re.escape(text[:i]) + f"[{higher[0]}-{higher[-1]}]" + (f"{any_digit}{{{len(text) - i - 1}}}" if i < len(text) - 1 else ""))
    return "|".join(parts) or "(?!)"


_QUICK: dict[tuple[int, int], re.Pattern | None] = {}


def _quick_pattern(limits: Limits) -> re.Pattern | None:
    """One expression finding what the quick path cannot vouch for: an odd tag, a cell or row
    beyond the limits. None when the limits allow a grid larger than the cell limit, which
    only the careful scan (knowing the highest row and column) can check."""
    key = (limits.max_rows, limits.max_cols)
    if key not in _QUICK:
        if limits.max_rows * limits.max_cols > limits.max_cells * 4:
            _QUICK[key] = None
        else:
            row = _greater_than(limits.max_rows, "0123456789", 8)
            col = _greater_than(limits.max_cols, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 3)
            # A row number with a leading zero is odd too (a reader may take A020001 as row 20001).
            far = f'<c r="(?:[A-Z]{{1,3}}(?:0|(?:{row})")|(?:{col})[0-9])|<row r="(?:0|(?:{row})")'.encode()
            _QUICK[key] = re.compile(_ODD_TAG + b"|" + far)
    return _QUICK[key]


def _quick_scan(data: bytes, limits: Limits) -> tuple[int, int, set[str]] | None:
    """Rows, cells and error cells of a piece of sheet XML, when every cell and row starts
    ``<c r="..."`` and ``<row r="..."`` (as Excel, LibreOffice and xlsxwriter write them) and
    none lies beyond the limits: one search of the whole piece and two counts. ``None`` when
    the careful scan must look (which also words the finding for a cell too far out)."""
    pattern = _quick_pattern(limits)
    if pattern is None or pattern.search(data):
        return None
    errors = {ref.decode() for ref in _FAST_ERROR.findall(data)} if b't="e"' in data else set()
    return data.count(b'<row r="'), data.count(b'<c r="'), errors
