"""The returned files of a run, and their pre-scan started early in a background process.

The pre-scan (:func:`derbyxl.guard.scan`) needs only the file; every later check needs the
register, which for a national collection is 200,000 rows and takes a second to load. So
``derbyxl validate`` lists the files and starts a process scanning them before it loads the
register (and before it imports pandas), on a core that would otherwise wait:

    files = expand_paths(["returns/"])
    early = Prescan.start(files)                      # None where the platform cannot fork
    register = load_register("register.xlsx")
    report = validate_paths(files, register, prescan=early)

When the register is loaded, :meth:`Prescan.collect` stops the process and takes whatever it
has finished; the workers scan the rest as usual. Results go to an unnamed temporary file
(not a pipe, which would fill while this process is busy), one length-prefixed record per
file, so a process stopped mid-record loses only that record. A file changed after it was
scanned (size, modification time or inode differ) is scanned again before it is read.

This module imports nothing heavy: it runs before pandas is loaded.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import zipfile
from collections import Counter
from pathlib import Path
from typing import Iterable

from derbyxl.cache import file_key
from derbyxl.findings import FIELDS, Finding
from derbyxl.guard import DEFAULT_LIMITS, Limits, ScanResult, scan
from derbyxl.workers import can_fork, default_workers, in_child

#: What identifies the state of a file between its scan and its reading.
Signature = tuple[int, int, int, int]


#: What people's machines and mail leave in a returns folder, and other files that cannot be a
#: return by their name: skipped in a folder (and listed), unless their content is a workbook.
NOT_RETURNS = {"thumbs.db", "desktop.ini", "readme.md", "readme.txt"}
NOT_RETURN_SUFFIXES = {
    ".pdf", ".txt", ".md", ".eml", ".msg", ".doc", ".docx", ".rtf", ".odt", ".ppt", ".pptx", ".png", ".jpg",
    ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".htm", ".html", ".json", ".xml", ".log", ".ini", ".db", ".lnk",
    ".url", ".tmp", ".bak", ".zip", ".7z",
}  # fmt: skip


def expand_paths(paths: Iterable[str | Path], ignored: list[Path] | None = None) -> list[Path]:
    """Files named, and the files inside folders named (not recursing, skipping Excel's
    ``~$`` lock files and hidden files). In a folder, a file that cannot be a return by its
    name (Thumbs.db, desktop.ini, a PDF of the return, an email: :data:`NOT_RETURNS`,
    :data:`NOT_RETURN_SUFFIXES`) is skipped, and added to ``ignored`` when given, unless its
    content is a workbook after all; a file named on its own is always checked."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if not child.is_file() or child.name.startswith(("~$", ".")):
                    continue
                if _not_a_return(child):
                    if ignored is not None:
                        ignored.append(child)
                    continue
                out.append(child)
        else:
            out.append(p)
    return out


def _not_a_return(path: Path) -> bool:
    name = path.name.lower()
    if name not in NOT_RETURNS and path.suffix.lower() not in NOT_RETURN_SUFFIXES:
        return False
    # ... unless it is a workbook under another name: a zip holding a workbook part.
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"PK":
                return True
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist()[:2000])
        return not ("xl/workbook.xml" in names or "mimetype" in names and "content.xml" in names)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, EOFError):
        return True


def sha256_of(path: Path) -> str | None:
    """The SHA-256 of a file's bytes (None when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def display_names(files: list[Path]) -> list[str]:
    """File names, made unique with their folder when two folders hold the same name."""
    counts = Counter(f.name for f in files)
    return [f.name if counts[f.name] == 1 else f"{f.parent.name}/{f.name}" for f in files]


def signature(path: Path) -> Signature | None:
    """Size, modification time, inode and device of a file (None when it cannot be seen)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def encode_scan(res: ScanResult) -> dict:
    """A scan result as JSON-ready data, its findings without the workbook name."""
    return {
        "ok": res.ok,
        "findings": [[getattr(f, k) for k in FIELDS[1:]] for f in res.findings],
        "sheets": res.sheets,
        "errors": {sheet: sorted(cells) for sheet, cells in res.error_cells.items()},
        "saved_at": res.saved_at,
        "merged": res.merged,
    }


def decode_scan(data: dict, name: str) -> ScanResult:
    """The inverse of :func:`encode_scan`, naming the workbook ``name`` in its findings."""
    return ScanResult(
        findings=[Finding(name, *f) for f in data["findings"]],
        sheets=dict(data["sheets"]),
        error_cells={sheet: set(cells) for sheet, cells in data["errors"].items()},
        ok=bool(data["ok"]),
        saved_at=data.get("saved_at"),
        merged={sheet: [tuple(map(tuple, m)) for m in ranges] for sheet, ranges in data.get("merged", {}).items()},
    )


class Prescan:
    """Files being pre-scanned in a background process; see the module's docstring."""

    def __init__(self, limits: Limits, process, out):
        self.limits = limits
        self._process = process
        self._out = out
        self._results: dict[str, tuple[Signature, dict]] | None = None

    @classmethod
    def start(cls, files: list[Path], limits: Limits = DEFAULT_LIMITS, skip: set[str] = frozenset()) -> Prescan | None:
        """Start scanning ``files``, except those whose cache key (:func:`derbyxl.cache.file_key`)
        is in ``skip`` (their results are in the cache). None when there is little to do, one core, or no safe fork."""
        if len(files) < 2 or default_workers() < 2 or not can_fork():
            return None
        try:
            out = tempfile.TemporaryFile()
        except OSError:
            return None  # no temporary folder to write to: the workers scan everything
        ctx = multiprocessing.get_context("fork")
        process = ctx.Process(target=_scan_all, args=(files, limits, out.fileno(), skip), daemon=True)
        try:
            process.start()
        except OSError:
            out.close()
            return None  # no process to be had (a limit on processes): the same
        return cls(limits, process, out)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every file to be scanned (at most ``timeout`` seconds); True when done."""
        if self._results is None:
            self._process.join(timeout)
        return self._results is not None or self._process.exitcode is not None

    def collect(self) -> dict[str, tuple[Signature, dict]]:
        """Stop the process and return what it finished: by path, the file's signature when
        scanned and its encoded result. Called again, returns the same."""
        if self._results is not None:
            return self._results
        self._process.kill()
        self._process.join()
        self._process.close()
        try:
            self._out.seek(0)  # the offset is shared with the process, which wrote at the end
            data = self._out.read()
        finally:
            self._out.close()
        results: dict[str, tuple[Signature, dict]] = {}
        at = 0
        while at + 4 <= len(data):
            size = int.from_bytes(data[at : at + 4], "big")
            if at + 4 + size > len(data):
                break  # the record being written when the process was stopped
            path, sig, encoded = json.loads(data[at + 4 : at + 4 + size])
            results[path] = (tuple(sig), encoded)
            at += 4 + size
        self._results = results
        return results

    def result_for(self, path: Path, name: str) -> ScanResult | None:
        """The scan of ``path`` if it was scanned and has not changed since, else None."""
        found = self.collect().get(str(path))
        if found is None or found[0] != signature(path):
            return None
        return decode_scan(found[1], name)

    cancel = collect


def _scan_all(files: list[Path], limits: Limits, fd: int, skip: set[str]) -> None:
    """In the background process: scan each file, appending a record as each is done."""
    in_child()
    try:
        for path in files:
            sig = signature(path)
            if sig is None or (skip and file_key(sha256_of(path) or "", path) in skip):
                continue
            record = json.dumps([str(path), sig, encode_scan(scan(path, limits))], separators=(",", ":")).encode()
            record = len(record).to_bytes(4, "big") + record
            while record:
                record = record[os.write(fd, record) :]
    except Exception:  # noqa: BLE001 - a full disk, say: stop quietly, the workers scan the rest
        pass
