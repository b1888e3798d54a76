"""The hostile corpus: hostile returns built on the fly from a good one, each with the finding
code it must get. Used by the hostile tests, the runner's and the portal's."""

from __future__ import annotations

import io
import zipfile

GOV = "Governance-and-Finance_2024-25-Q4.xlsx"
MEASURES_PART = "xl/worksheets/sheet2.xml"  # Cover, Measures, Risks, stamp


def rezip(src: bytes, changes: dict, add: dict | None = None) -> bytes:
    """A copy of a zip with parts replaced (bytes), transformed (callable) or removed (None)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename in changes:
                change = changes[info.filename]
                if change is None:
                    continue
                data = change(data) if callable(change) else change
            zout.writestr(info.filename, data)
        present = set(zin.namelist())
        extra = {n: c for n, c in changes.items() if n not in present and isinstance(c, bytes)}
        for name, data in {**extra, **(add or {})}.items():
            zout.writestr(name, data)
    return out.getvalue()


def add_row(xml: bytes, row: bytes) -> bytes:
    return xml.replace(b"</sheetData>", row + b"</sheetData>")


def with_cell(ref: str, value=b"<v>1</v>"):
    row = int("".join(ch for ch in ref if ch.isdigit()))
    return lambda xml: add_row(xml, b'<row r="%d"><c r="%s">%s</c></row>' % (row, ref.encode(), value))


def sst_claiming(count: bytes, before: bytes = b"") -> bytes:
    """A shared strings part of two strings whose root declares ``count``."""
    root = b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="2" ' + count + b">"
    return b'<?xml version="1.0" encoding="UTF-8"?>' + before + root + b"<si><t>a</t></si><si><t>b</t></si></sst>"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>&lol3;</t></si></sst>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"""
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504


def _build(kind: str, good: bytes) -> tuple[str, bytes]:
    """(file name, bytes) of one hostile file."""
    if kind == "empty":
        return "empty.xlsx", b""
    if kind == "truncated-zip":
        return "truncated.xlsx", good[: len(good) // 3]
    if kind == "zip-not-workbook":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("notes.txt", "hello")
        return "archive.xlsx", buf.getvalue()
    if kind == "missing-workbook-part":
        return "noworkbook.xlsx", rezip(good, {"xl/workbook.xml": None})
    if kind == "missing-sheet-part":
        return "nosheet.xlsx", rezip(good, {MEASURES_PART: None})
    if kind == "wrong-content-types":
        return "ct.xlsx", rezip(good, {"[Content_Types].xml": lambda x: x.replace(b"spreadsheetml.sheet.main+xml", b"wordprocessingml.document.main+xml")})
    if kind == "renamed-xls":
        return "old.xlsx", OLE + b"Workbook".ljust(64, b"\x00") * 4
    if kind == "renamed-csv":
        return "data.xlsx", b"Ref,Actual\nCM PM03,93.25\n"
    if kind == "renamed-pdf":
        return "report.xlsx", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
    if kind == "password-protected":
        return "locked.xlsx", OLE + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 200
    if kind == "xlsm":
        return "macros.xlsm", good
    if kind == "vba-inside":
        return "vba.xlsx", rezip(good, {}, add={"xl/vbaProject.bin": b"\x00" * 64})
    if kind == "million-rows":
        return "rows.xlsx", rezip(good, {MEASURES_PART: with_cell("A1000000")})
    if kind == "16000-columns":
        return "cols.xlsx", rezip(good, {MEASURES_PART: with_cell("WQJ2")})
    if kind == "cell-at-XFD1048576":
        return "far.xlsx", rezip(good, {MEASURES_PART: with_cell("XFD1048576")})
    if kind == "unreferenced-cells":
        cells = b"<c><v>1</v></c>" * 20000
        return "wide.xlsx", rezip(good, {MEASURES_PART: lambda x: add_row(x, b'<row r="900">' + cells + b"</row>")})
    if kind == "shared-strings-bomb":
        sst = b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">' + b"<si><t>" + b"A" * 30_000_000 + b"</t></si></sst>"
        return "sst.xlsx", rezip(good, {"xl/sharedStrings.xml": sst})
    if kind == "shared-strings-count":
        # calamine reserves room for the declared count at once: 96 GB, and the process aborts.
        return "count.xlsx", rezip(good, {"xl/sharedStrings.xml": sst_claiming(b'uniqueCount="4000000000"')})
    if kind == "shared-strings-count-disguised":
        # The same behind a comment holding a harmless count, in single quotes with spaces.
        return "count2.xlsx", rezip(good, {"xl/sharedStrings.xml": sst_claiming(b"uniqueCount = '4000000000'", b'<!-- <sst uniqueCount="3"> -->')})
    if kind == "zip-bomb":
        return "bomb.xlsx", rezip(good, {}, add={"xl/media/image1.png": b"\x00" * 40_000_000})
    if kind == "unknown-zip-version":
        # Every part claims to need zip version 25.4 to extract: zipfile refuses to list them.
        data = bytearray(good)
        at = data.find(b"PK\x01\x02")
        while at != -1:
            data[at + 6 : at + 8] = (254).to_bytes(2, "little")
            at = data.find(b"PK\x01\x02", at + 4)
        return "version.xlsx", bytes(data)
    if kind == "broken-deflate-in-sheet":
        # The Measures sheet's compressed bytes garbled past its start: the archive lists
        # fine, and inflating the sheet fails half way (zlib.error).
        with zipfile.ZipFile(io.BytesIO(good)) as z:
            info = z.getinfo(MEASURES_PART)
        data = bytearray(good)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for i in range(start + 200, start + info.compress_size - 8, 7):
            data[i] ^= 0x5A
        return "deflate.xlsx", bytes(data)
    if kind == "entity-bomb":
        return "lol.xlsx", rezip(good, {"xl/sharedStrings.xml": BILLION_LAUGHS})
    if kind == "external-entity":
        return "xxe.xlsx", rezip(good, {"xl/workbook.xml": lambda x: XXE + (x.split(b"?>", 1)[1] if x.startswith(b"<?xml") else x)})
    raise KeyError(kind)


#: How validate.check_file words an exception that nothing before it caught.
CAUGHT_UNEXPECTED = "it could not be read ("


HOSTILE = {
    "empty": "file-empty",
    "truncated-zip": "corrupt-file",
    "zip-not-workbook": "missing-part",
    "missing-workbook-part": "missing-part",
    "missing-sheet-part": "missing-part",
    "wrong-content-types": "wrong-file-type",
    "renamed-xls": "legacy-xls",
    "renamed-csv": "wrong-file-type",
    "renamed-pdf": "wrong-file-type",
    "password-protected": "password-protected",
    "xlsm": "macro-workbook",
    "vba-inside": "macro-workbook",
    "million-rows": "sheet-too-large",
    "16000-columns": "sheet-too-large",
    "cell-at-XFD1048576": "sheet-too-large",
    "unreferenced-cells": "sheet-too-large",
    "shared-strings-bomb": "zip-bomb",
    "shared-strings-count": "zip-bomb",
    "shared-strings-count-disguised": "zip-bomb",
    "zip-bomb": "zip-bomb",
    "unknown-zip-version": "corrupt-file",
    "broken-deflate-in-sheet": "corrupt-file",
    "entity-bomb": "xml-forbidden",
    "external-entity": "xml-forbidden",
}
