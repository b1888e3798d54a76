"""History of consolidated quarters, in an embedded SQLite database.

Each consolidation replaces its quarter's rows in one transaction, so a crash midway leaves the
previous state. Direction of travel and next quarter's "Previous actual" are read from here.

    from derbyxl.history import History
    with History("outputs/history.sqlite") as h:
        h.periods()                      # ['2024-25-Q3', '2024-25-Q4']
        h.values_for("2024-25-Q4")       # {ref: {"actual": ..., "status": ...}}
"""

from __future__ import annotations

import csv
import multiprocessing
import operator
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

from derbyxl.periods import Period
from derbyxl.xlsx_util import looks_like_formula
from derbyxl.workers import can_fork, in_child

SCHEMA = """
CREATE TABLE IF NOT EXISTS consolidation (
    period TEXT PRIMARY KEY,
    run_at TEXT NOT NULL,
    register_fingerprint TEXT NOT NULL,
    master TEXT,
    items INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS item_value (
    period TEXT NOT NULL,
    ref TEXT NOT NULL,
    kind TEXT NOT NULL,
    portfolio TEXT NOT NULL,
    theme TEXT,
    actual REAL,
    status TEXT,
    status_word TEXT,
    score INTEGER,
    commentary TEXT,
    note TEXT,
    source_file TEXT,
    sha256 TEXT,
    PRIMARY KEY (period, ref)
);
CREATE TABLE IF NOT EXISTS submission (
    period TEXT NOT NULL,
    portfolio TEXT,
    file TEXT NOT NULL,
    sha256 TEXT,
    received TEXT,
    signed_by TEXT,
    signed_date TEXT,
    valid INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    warnings INTEGER NOT NULL,
    used INTEGER NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS item_value_ref ON item_value (ref, period);
"""

VALUE_COLUMNS = ("period", "ref", "kind", "portfolio", "theme", "actual", "status", "status_word", "score", "commentary", "note", "source_file", "sha256")
SUBMISSION_COLUMNS = ("period", "portfolio", "file", "sha256", "received", "signed_by", "signed_date", "valid", "errors", "warnings", "used", "note")


def _receive(conn) -> tuple[str, object]:
    try:
        return conn.recv()
    except EOFError:
        return "error", ("RuntimeError", "the process recording the history stopped")


class HistoryBusy(Exception):
    """Another process holds the history database for writing."""


class History:
    """The history database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, timeout: float = 5.0):
        self.path = Path(path)
        self.timeout = timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are begun explicitly, so a write takes the lock
        # up front (BEGIN IMMEDIATE) and a second writer fails fast with a clear message.
        self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.db.close()

    def periods(self) -> list[str]:
        """Consolidated periods, oldest first."""
        rows = self.db.execute("SELECT period FROM consolidation").fetchall()
        return sorted((r[0] for r in rows), key=lambda p: Period.parse(p))

    def values_for(self, period: Period | str) -> dict[str, dict]:
        """Every item's recorded values for one period, by ref."""
        key = Period.parse(period).key
        cur = self.db.execute("SELECT * FROM item_value WHERE period = ?", (key,))
        names = [d[0] for d in cur.description]
        return {row[1]: dict(zip(names, row)) for row in cur.fetchall()}

    def latest_actuals(self, before: Period | str | None = None) -> dict[str, float]:
        """The most recent consolidated actual of each measure (before a period, if given)."""
        out: dict[str, tuple[Period, float]] = {}
        limit = Period.parse(before) if before else None
        for period, ref, actual in self.db.execute("SELECT period, ref, actual FROM item_value WHERE actual IS NOT NULL"):
            p = Period.parse(period)
            if limit and p >= limit:
                continue
            if ref not in out or out[ref][0] < p:
                out[ref] = (p, actual)
        return {ref: v for ref, (_, v) in out.items()}

    def record(
        self,
        period: Period,
        run_at: str,
        register_fingerprint: str,
        master: str | None,
        values: Iterable[dict],
        submissions: Iterable[dict],
    ) -> None:
        """Replace one period's rows, all in one transaction.

        Raises:
            HistoryBusy: when another consolidation is writing.
        """
        self._write(period, run_at, register_fingerprint, master, values, submissions)
        try:
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _write(self, period: Period, run_at, register_fingerprint, master, values, submissions) -> None:
        """Begin a write transaction and replace the period's rows in it, leaving it open.

        Raises:
            HistoryBusy: when another consolidation is writing.
        """
        # Sorted by ref, rows go into the (period, ref) key in order: about twice as fast.
        values = sorted(values, key=operator.itemgetter("ref"))
        submissions = list(submissions)
        pick = operator.itemgetter(*VALUE_COLUMNS[1:])
        try:
            value_rows = [(period.key, *pick(v)) for v in values]
        except KeyError:
            value_rows = [tuple(v.get(c) if c != "period" else period.key for c in VALUE_COLUMNS) for v in values]
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise HistoryBusy(f"the history database {self.path} is busy: another consolidation is writing to it; try again when it has finished") from exc
        try:
            for table in ("item_value", "submission", "consolidation"):
                self.db.execute(f"DELETE FROM {table} WHERE period = ?", (period.key,))
            self.db.execute(
                "INSERT INTO consolidation VALUES (?, ?, ?, ?, ?)", (period.key, run_at, register_fingerprint, master, len(values))
            )
            self.db.executemany(
                f"INSERT INTO item_value VALUES ({', '.join('?' * len(VALUE_COLUMNS))})",
                value_rows,
            )
            self.db.executemany(
                f"INSERT INTO submission VALUES ({', '.join('?' * len(SUBMISSION_COLUMNS))})",
                [tuple(s.get(c) if c != "period" else period.key for c in SUBMISSION_COLUMNS) for s in submissions],
            )
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextmanager
    def recording(self, period: Period, run_at: str, register_fingerprint: str, master: str | None, values: list[dict], submissions: list[dict]):
        """Record a quarter while the block runs (the master being written), committing only
        when the block succeeds: the same result as :meth:`record` after the block, in about
        half the wall time of the two, because a forked process does the recording on the
        other core. If the block fails, or this process dies, nothing is recorded.

        Raises:
            HistoryBusy: when another consolidation is writing (at the end of the block).
        """
        if not can_fork():
            yield
            self.record(period, run_at, register_fingerprint, master, values, submissions)
            return
        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe()

        def child():
            in_child()
            ours.close()
            try:
                # A connection of its own: one opened before a fork is never used after it.
                with History(self.path, timeout=self.timeout) as h:
                    h._write(period, run_at, register_fingerprint, master, values, submissions)
                    theirs.send(("ready", None))
                    try:
                        verdict = theirs.recv()
                    except EOFError:  # the parent died: record nothing
                        verdict = "rollback"
                    h.db.execute("COMMIT" if verdict == "commit" else "ROLLBACK")
                    theirs.send(("done", None))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                try:
                    theirs.send(("error", (type(exc).__name__, str(exc))))
                except (OSError, ValueError):
                    pass

        proc = ctx.Process(target=child, name="derbyxl-history")
        proc.start()
        theirs.close()
        try:
            try:
                yield
            except BaseException:
                try:
                    ours.send("rollback")
                except (OSError, ValueError):
                    pass
                raise
            status, info = _receive(ours)
            if status == "ready":
                ours.send("commit")
                status, info = _receive(ours)
            if status == "error":
                name, message = info
                raise HistoryBusy(message) if name == "HistoryBusy" else RuntimeError(f"recording the history failed: {name}: {message}")
        finally:
            ours.close()
            proc.join()

    def export_csv(self, out: str | Path) -> int:
        """Write every recorded item value as CSV (UTF-8 with a BOM, so Excel reads the
        accents); returns the number of rows.

        Text that a spreadsheet would run as a formula when the CSV is opened (commentary
        such as ``=HYPERLINK(...)``, typed by officers) gets a leading apostrophe, which Excel
        and LibreOffice show as plain text; numbers are written as they are.
        """
        cur = self.db.execute("SELECT * FROM item_value ORDER BY period, portfolio, ref")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        with open(out, "w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            w.writerows([tuple("'" + v if isinstance(v, str) and looks_like_formula(v) else v for v in row) for row in rows])
        return len(rows)
