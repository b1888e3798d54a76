"""Look for numbers in a workbook's XML that make python-calamine abort the process.

Not a test (it runs some 750 processes, about ten seconds): run it by hand on a return,
for instance after upgrading python-calamine, and make the pre-scan (derbyxl/guard.py) refuse
whatever it finds, with a case in test_hostile.py.

    .venv/bin/python tests/hostile/find_reader_crashes.py returns/Some-return.xlsx

Every numeric attribute of every XML part is set, one kind (part, element, attribute) at a
time, to a huge and to a negative number, and calamine reads the result in a process of its
own. An exception is fine (the reader reports it); a process killed by a signal is not. In
November 2026 (python-calamine 0.9.1, returns written by openpyxl and by LibreOffice) it found
one: the shared strings table's uniqueCount.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VALUES = (b"4000000000", b"-1", b"18446744073709551615")
TAG = re.compile(rb"<([\w:]+)\b([^>]*)>")
NUMERIC_ATTR = re.compile(rb'\s([\w:]+)="(-?\d+(?:\.\d+)?)"')
READ_ALL = """
import sys
import python_calamine as c
wb = c.CalamineWorkbook.from_path(sys.argv[1])
for name in wb.sheet_names:
    try:
        sheet = wb.get_sheet_by_name(name)
        sheet.to_python(skip_empty_area=False, nrows=20000)
        sheet.merged_cell_ranges
    except Exception:
        pass
"""


def cases(parts: dict[str, bytes]) -> list[tuple[tuple[str, bytes, bytes], int, int]]:
    """The first place of each (part, element, attribute) holding a number: where its value is."""
    found, seen = [], set()
    for name, data in parts.items():
        if not name.endswith((".xml", ".rels")):
            continue
        for tag in TAG.finditer(data):
            for attr in NUMERIC_ATTR.finditer(tag.group(2)):
                kind = (name, tag.group(1), attr.group(1))
                if kind not in seen:
                    seen.add(kind)
                    found.append((kind, tag.start(2) + attr.start(2), tag.start(2) + attr.end(2)))
    return found


def crashes(parts: dict[str, bytes], case, folder: Path) -> list[str]:
    (part, element, attribute), start, end = case
    out = []
    for value in VALUES:
        path = folder / f"{abs(hash((case, value)))}.xlsx"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in parts.items():
                z.writestr(name, data[:start] + value + data[end:] if name == part else data)
        run = subprocess.run([sys.executable, "-c", READ_ALL, str(path)], capture_output=True, timeout=120)
        path.unlink()
        if run.returncode < 0:
            out.append(f"{part} <{element.decode()} {attribute.decode()}={value.decode()}>: signal {-run.returncode}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    with zipfile.ZipFile(argv[0]) as z:
        parts = {info.filename: z.read(info.filename) for info in z.infolist()}
    todo = cases(parts)
    print(f"{len(todo)} numeric attributes, {len(VALUES)} values each", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:
        found = [line for lines in pool.map(lambda c: crashes(parts, c, Path(tmp)), todo) for line in lines]
    print("\n".join(found) or "no crash found")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
