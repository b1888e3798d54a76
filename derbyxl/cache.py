"""What was learned from each returned file, kept by the file's SHA-256 in the history database.

``derbyxl validate`` reads every return; ``derbyxl consolidate`` straight after needs exactly the
same per-file results. Rather than read and check every file again, the per-file results
(findings and normalised values, see :mod:`derbyxl.validate`) are stored here, keyed by the
file's SHA-256 and extension (:func:`file_key`), a context (the register's fingerprint and the
limits of the checks) and :data:`CACHE_VERSION` (derbyxl's version and code). The expected
period is not part of the key: the checks that depend on it run across files, every time. A file that changes by a byte, a register that changes in any way,
other limits, or a new derbyxl gets a fresh check.

The checks across files (the pandera schemas over all returns, cross-field rules, the expected
period, plausibility against history) are not cached: they run every time, over the cached
values, because they depend on more than one file.

    from derbyxl.cache import FileCache
    with FileCache("outputs/history.sqlite") as cache:
        cache.get_many(["<sha256>"], context)   # {sha256: payload bytes}

The cache is a convenience: a database that is busy or damaged means files are checked again,
never a failed run. Payloads are in marshal's format (quick, and it runs no code when read,
unlike pickle), which like any cache is for derbyxl's own files, not for data from elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Iterable

from derbyxl import __version__
from derbyxl.spec import FORMAT_VERSION

#: The modules whose code decides what a file yields: any edit to them is a new version.
STAGE_MODULES = ("guard", "read", "checks", "validate", "values", "rag", "spec", "register", "findings", "periods", "baseline")


def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in STAGE_MODULES:
        h.update((here / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


#: Part of every key: results of other code (another derbyxl, or the same one edited), of
#: another template format or of another Python (results are kept in marshal's format, which
#: belongs to the Python version) are never reused.
CACHE_VERSION = f"{__version__}/{FORMAT_VERSION}/{_code_hash()}/py{sys.version_info[0]}.{sys.version_info[1]}"

SCHEMA = """
CREATE TABLE IF NOT EXISTS file_check (
    sha256 TEXT NOT NULL,
    context TEXT NOT NULL,
    version TEXT NOT NULL,
    checked_at REAL NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (sha256, context, version)
);
"""

COLUMNS = ("sha256", "context", "version", "checked_at", "payload")
#: Entries not used for this long are dropped when new ones are written.
KEEP_SECONDS = 400 * 24 * 3600


def default_cache_path() -> Path:
    """Where per-file results are kept when no history database is named: the user's cache
    folder (``~/.cache/derbyxl`` on Linux, ``%LOCALAPPDATA%\\derbyxl\\Cache`` on Windows), so
    that checking returns writes nothing in the folder it is run from."""
    from platformdirs import user_cache_path

    return user_cache_path("derbyxl", appauthor=False) / "results.sqlite"


def file_key(sha256: str, path: str | Path) -> str:
    """What a file's results are kept under: its SHA-256 and every part of its name that a
    check reads. The pre-scan judges a file by its extension too (the same bytes are a
    ``macro-workbook`` named ``.xlsm``), so the extension, as the checks compare it (lower
    case), is part of the key; nothing else of the name decides a finding."""
    return f"{sha256}{Path(path).suffix.lower()}"


def context_for(register_fingerprint: str, limits) -> str:
    """What a file's results depend on besides its bytes: the register, the limits, and
    whether --debug asked for the readers' own words in messages."""
    debug = os.environ.get("DERBYXL_DEBUG") == "1"
    return hashlib.sha256(f"{register_fingerprint} {limits!r} {debug}".encode()).hexdigest()[:16]


class FileCache:
    """Per-file check results in a SQLite database (normally the history database)."""

    def __init__(self, path: str | Path, timeout: float = 2.0):
        self.path = Path(path)
        self.db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            columns = [row[1] for row in self.db.execute("PRAGMA table_info(file_check)")]
            if columns and columns != list(COLUMNS):
                self.db.execute("DROP TABLE file_check")  # an older layout: it is only a cache
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError):
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def get_many(self, sha256s: Iterable[str], context: str) -> dict[str, bytes]:
        """The stored payloads of those files that have one."""
        wanted = sorted(set(sha256s))
        if self.db is None or not wanted:
            return {}
        out: dict[str, bytes] = {}
        try:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                cur = self.db.execute(
                    f"SELECT sha256, payload FROM file_check WHERE context = ? AND version = ? AND sha256 IN ({marks})",
                    (context, CACHE_VERSION, *chunk),
                )
                out.update((sha, bytes(payload)) for sha, payload in cur)
            if out:
                self._touch(out, context)
        except sqlite3.Error:
            return {}
        return out

    def known(self, context: str) -> set[str]:
        """The SHA-256 of every file with stored results in this context."""
        if self.db is None:
            return set()
        try:
            cur = self.db.execute("SELECT sha256 FROM file_check WHERE context = ? AND version = ?", (context, CACHE_VERSION))
            return {sha for (sha,) in cur}
        except sqlite3.Error:
            return set()

    def _touch(self, found: dict[str, bytes], context: str) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return  # busy: the dates are only for tidying up
        try:
            self.db.executemany(
                "UPDATE file_check SET checked_at = ? WHERE sha256 = ? AND context = ? AND version = ?",
                [(time.time(), sha, context, CACHE_VERSION) for sha in found],
            )
            self.db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def put_many(self, payloads: dict[str, bytes], context: str) -> bool:
        """Store payloads by SHA-256; False (and nothing stored) when the database is busy."""
        if self.db is None or not payloads:
            return False
        now = time.time()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return False
        try:
            self.db.execute("DELETE FROM file_check WHERE version != ? OR checked_at < ?", (CACHE_VERSION, now - KEEP_SECONDS))
            self.db.executemany(
                "INSERT OR REPLACE INTO file_check VALUES (?, ?, ?, ?, ?)",
                [(sha, context, CACHE_VERSION, now, payload) for sha, payload in payloads.items()],
            )
            self.db.execute("COMMIT")
            return True
        except sqlite3.Error:
            self._rollback()
            return False

    def clear(self) -> int:
        """Forget every stored result; returns how many there were."""
        if self.db is None:
            return 0
        n = self.db.execute("SELECT COUNT(*) FROM file_check").fetchone()[0]
        self.db.execute("DELETE FROM file_check")
        return n
