"""History of consolidated quarters, in an embedded SQLite database.

Every consolidation is kept as a **run** (when, from which register, how many files, valid
returns and items with data, its master's SHA-256, and where that master was archived once a
later run replaced it). Each period has one *current* run, whose values direction of travel,
next quarter's "Previous actual" and the export read. A run is written in one transaction, so
a crash midway leaves the previous state, and an earlier run can be made current again
(:meth:`History.set_current`, used by ``derbyxl history restore``).

    from derbyxl.history import History
    with History("outputs/history.sqlite") as h:
        h.periods()                      # ['2024-25-Q3', '2024-25-Q4']
        h.values_for("2024-25-Q4")       # {ref: {"actual": ..., "status": ...}}
        h.runs("2024-25-Q4")             # [Run(id=1, ...), Run(id=2, ..., current=True)]
"""

from __future__ import annotations

import csv
import os
import operator
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from derbyxl import rag
from derbyxl.periods import Period
from derbyxl.record import VALUE_COLUMNS, VALUE_TYPES, Record
from derbyxl.xlsx_util import OutputNotWritable, looks_like_formula

#: The layout's version, kept in SQLite's user_version; older databases are brought up to it.
SCHEMA_VERSION = 2

#: One row per item and run: what the master showed, and enough to read it without the register.
SUBMISSION_COLUMNS = ("period", "portfolio", "file", "sha256", "received", "signed_by", "signed_date", "valid", "errors", "warnings", "used", "note")
RUN_COLUMNS = ("id", "period", "run_at", "register_fingerprint", "master", "master_sha256", "archived", "files", "valid_returns", "items", "items_with_data")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY,
    period TEXT NOT NULL,
    run_at TEXT NOT NULL,
    register_fingerprint TEXT NOT NULL,
    master TEXT,
    master_sha256 TEXT,
    archived TEXT,
    files INTEGER NOT NULL DEFAULT 0,
    valid_returns INTEGER NOT NULL DEFAULT 0,
    items INTEGER NOT NULL DEFAULT 0,
    items_with_data INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS consolidation (
    period TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES run (id)
);
CREATE TABLE IF NOT EXISTS item_value (
    run_id INTEGER NOT NULL REFERENCES run (id),
    {", ".join(f"{c} {VALUE_TYPES[c]}" for c in VALUE_COLUMNS)},
    PRIMARY KEY (run_id, ref)
);
CREATE TABLE IF NOT EXISTS submission (
    run_id INTEGER NOT NULL REFERENCES run (id),
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
CREATE INDEX IF NOT EXISTS run_period ON run (period, id);
"""

#: The first layout (one set of rows per period, replaced by each consolidation): its tables'
#: columns, for bringing such a database up to date.
_V1_VALUE_COLUMNS = ("period", "ref", "kind", "portfolio", "theme", "actual", "status", "status_word", "score", "commentary", "note", "source_file", "sha256")


@dataclass(frozen=True)
class Run:
    """One consolidation of a period, as recorded."""

    id: int
    period: str
    run_at: str
    register_fingerprint: str
    master: str | None
    master_sha256: str | None
    archived: str | None
    files: int
    valid_returns: int
    items: int
    items_with_data: int
    current: bool = False


def items_with_data(values: Iterable[dict]) -> int:
    """How many recorded values carry an answer: a value, a status or a score (a measure
    returned with no data, or an item with no return, does not count)."""
    return sum(1 for v in values if v.get("status") not in (None, rag.NO_DATA, rag.NO_RETURN))


class HistoryUnavailable(OutputNotWritable):
    """The history database cannot be opened or created where it was asked for."""


class HistoryBusy(Exception):
    """Another process holds the history database for writing."""


class Recording:
    """What :meth:`History.recording` gives its block: the rows being inserted on a thread,
    and what the block learns of the master."""

    def __init__(self, insert):
        self.master_sha256: str | None = None
        self.archived: str | None = None
        self._done: dict = {}
        self.thread = threading.Thread(target=self._run, args=(insert,), name="derbyxl-history", daemon=True)
        self.thread.start()

    def _run(self, insert) -> None:
        try:
            self._done["ids"] = insert()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by wait()
            self._done["error"] = exc

    def wait(self) -> tuple:
        """Wait for the rows to be in; raise what stopped them, if anything did."""
        self.thread.join()
        if "error" in self._done:
            raise self._done["error"]
        return self._done["ids"]


class History:
    """The history database. Use as a context manager, or call :meth:`close`.

    Raises:
        HistoryUnavailable: when the database cannot be created or opened at ``path`` (a
            folder that cannot be written, a file that is not a database).
    """

    def __init__(self, path: str | Path, timeout: float = 5.0):
        self.path = Path(path)
        self.timeout = timeout
        self.db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are begun explicitly, so a write takes the
            # lock up front (BEGIN IMMEDIATE) and a second writer fails fast with a message.
            # check_same_thread=False: :meth:`recording` inserts on a thread of its own while
            # the caller writes the master, never both at once on this connection.
            self.db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._bring_up_to_date()
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            self.close()
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise HistoryBusy(f"the history database {self.path} is busy: another consolidation is writing to it; try again when it has finished") from exc
            raise HistoryUnavailable(self.path, _why(exc, self.path)) from exc

    def _bring_up_to_date(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            old = "item_value" in tables and "run_id" not in {r[1] for r in self.db.execute("PRAGMA table_info(item_value)")}
            if old:
                for t in ("consolidation", "item_value", "submission"):
                    self.db.execute(f"ALTER TABLE {t} RENAME TO {t}_v1")
                self.db.execute("DROP INDEX IF EXISTS item_value_ref")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            # A field added to derbyxl.record (with SCHEMA_VERSION raised) gets its column.
            have = {r[1] for r in self.db.execute("PRAGMA table_info(item_value)")}
            for c in VALUE_COLUMNS:
                if c not in have:
                    self.db.execute(f"ALTER TABLE item_value ADD COLUMN {c} {VALUE_TYPES[c]}")
            if old:
                self._from_v1()
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _from_v1(self) -> None:
        """Each period of a first-layout database becomes one run, its current one."""
        for period, run_at, fingerprint, master, items in self.db.execute("SELECT period, run_at, register_fingerprint, master, items FROM consolidation_v1").fetchall():
            files, valid = self.db.execute("SELECT COUNT(*), COALESCE(SUM(used), 0) FROM submission_v1 WHERE period = ?", (period,)).fetchone()
            with_data = self.db.execute("SELECT COUNT(*) FROM item_value_v1 WHERE period = ? AND status IS NOT NULL AND status NOT IN ('No data', 'No return')", (period,)).fetchone()[0]
            run_id = self.db.execute(
                "INSERT INTO run (period, run_at, register_fingerprint, master, files, valid_returns, items, items_with_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (period, run_at, fingerprint, master, files, valid, items, with_data),
            ).lastrowid
            self.db.execute("INSERT INTO consolidation VALUES (?, ?)", (period, run_id))
            cols = ", ".join(_V1_VALUE_COLUMNS)
            self.db.execute(f"INSERT INTO item_value (run_id, {cols}) SELECT ?, {cols} FROM item_value_v1 WHERE period = ?", (run_id, period))
            cols = ", ".join(SUBMISSION_COLUMNS)
            self.db.execute(f"INSERT INTO submission (run_id, {cols}) SELECT ?, {cols} FROM submission_v1 WHERE period = ?", (run_id, period))
        for t in ("consolidation", "item_value", "submission"):
            self.db.execute(f"DROP TABLE {t}_v1")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None

    def periods(self) -> list[str]:
        """Consolidated periods, oldest first."""
        rows = self.db.execute("SELECT period FROM consolidation").fetchall()
        return sorted((r[0] for r in rows), key=lambda p: Period.parse(p))

    def values_for(self, period: Period | str) -> dict[str, dict]:
        """Every item's values in the current run of one period, by ref."""
        key = Period.parse(period).key
        cur = self.db.execute(
            f"SELECT {', '.join(VALUE_COLUMNS)} FROM item_value WHERE run_id = (SELECT run_id FROM consolidation WHERE period = ?)",
            (key,),
        )
        values = (dict(zip(VALUE_COLUMNS, row)) for row in cur.fetchall())
        return {v["ref"]: v for v in values}

    def latest_actuals(self, before: Period | str | None = None) -> dict[str, float]:
        """The most recent consolidated actual of each measure (before a period, if given)."""
        return {ref: actual for ref, (_, actual) in self.latest_values(before).items()}

    def latest_values(self, before: Period | str | None = None) -> dict[str, tuple[str, float]]:
        """The most recent consolidated actual of each measure and the period it is for
        (before a period, if given), from each period's current run."""
        # Period keys (2024-25-Q4) sort as the quarters do, so SQLite picks the latest; with
        # MAX(), SQLite takes the other bare columns from the row holding the maximum.
        limit = Period.parse(before).key if before else "9999"
        cur = self.db.execute(
            "SELECT iv.ref, MAX(iv.period), iv.actual FROM item_value iv JOIN consolidation c ON iv.run_id = c.run_id"
            " WHERE iv.actual IS NOT NULL AND iv.period < ? GROUP BY iv.ref",
            (limit,),
        )
        return {ref: (period, actual) for ref, period, actual in cur}

    def _runs(self, where: str = "", args: tuple = ()) -> list[Run]:
        current = {r[0] for r in self.db.execute("SELECT run_id FROM consolidation")}
        cur = self.db.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM run {where} ORDER BY id", args)
        return [Run(*row, current=row[0] in current) for row in cur.fetchall()]

    def runs(self, period: Period | str | None = None) -> list[Run]:
        """Every recorded run (of one period, if given), oldest first."""
        if period is None:
            return self._runs()
        return self._runs("WHERE period = ?", (Period.parse(period).key,))

    def run(self, run_id: int) -> Run | None:
        found = self._runs("WHERE id = ?", (run_id,))
        return found[0] if found else None

    def current_run(self, period: Period | str) -> Run | None:
        """The run whose values stand for the period now (None: never consolidated)."""
        row = self.db.execute("SELECT run_id FROM consolidation WHERE period = ?", (Period.parse(period).key,)).fetchone()
        return self.run(row[0]) if row else None

    def record(
        self,
        period: Period,
        run_at: str,
        register_fingerprint: str,
        master: str | None,
        values: Iterable[dict],
        submissions: Iterable[dict],
        *,
        master_sha256: str | None = None,
    ) -> int:
        """Record a run of one period and make it the current one, in one transaction.

        Returns:
            the run's id.

        Raises:
            HistoryBusy: when another consolidation is writing.
        """
        with self.transaction():
            run_id, _ = self._insert(period, run_at, register_fingerprint, master, values, submissions)
            self._finish(run_id, None, master_sha256=master_sha256)
        return run_id

    def _insert(self, period: Period, run_at, register_fingerprint, master, values, submissions) -> tuple[int, int | None]:
        """Record the run within a :meth:`transaction`.

        Returns:
            the new run's id, and that of the run it replaces as current (None: the first).
        """
        # Records as consolidate builds them are read by attribute (by name costs 3x);
        # mappings by name, a key left out read as None.
        values = values if isinstance(values, list) else list(values)
        records = all(isinstance(v, Record) for v in values)
        # Sorted by ref, rows go into the (run_id, ref) key in order: about twice as fast. A
        # list is sorted in place (a copy held 4.5 MB more at 3,000 returns, as the master was
        # written): the caller's list is in ref order afterwards.
        values.sort(key=operator.attrgetter("ref") if records else operator.itemgetter("ref"))
        submissions = list(submissions)
        before = self.db.execute("SELECT run_id FROM consolidation WHERE period = ?", (period.key,)).fetchone()
        run_id = self.db.execute(
            "INSERT INTO run (period, run_at, register_fingerprint, master, files, valid_returns, items, items_with_data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (period.key, run_at, register_fingerprint, master, len(submissions), sum(1 for s in submissions if s.get("used")), len(values), items_with_data(values)),
        ).lastrowid
        self.db.execute("INSERT OR REPLACE INTO consolidation VALUES (?, ?)", (period.key, run_id))
        rest = [c for c in VALUE_COLUMNS if c != "period"]  # the period is the run's
        # Each row made as SQLite asks for it, not all first (597,000 tuples at 3,000 returns
        # took 125 MB, while the master was being written).
        if records:
            pick = operator.attrgetter(*rest)
            value_rows = ((run_id, period.key, *pick(v)) for v in values)
        else:
            value_rows = ((run_id, period.key, *(v.get(c) for c in rest)) for v in values)
        self.db.executemany(f"INSERT INTO item_value (run_id, period, {', '.join(rest)}) VALUES ({', '.join('?' * (len(rest) + 2))})", value_rows)
        self.db.executemany(
            f"INSERT INTO submission (run_id, {', '.join(SUBMISSION_COLUMNS)}) VALUES ({', '.join('?' * (len(SUBMISSION_COLUMNS) + 1))})",
            [(run_id, *(s.get(c) if c != "period" else period.key for c in SUBMISSION_COLUMNS)) for s in submissions],
        )
        return run_id, (before[0] if before else None)

    def _finish(self, run_id: int, previous_id: int | None, master_sha256: str | None = None, archived: str | None = None) -> None:
        """What is known only once the master is in place: its SHA-256, and where the master
        it replaced was archived (on the run that had made it)."""
        if master_sha256:
            self.db.execute("UPDATE run SET master_sha256 = ? WHERE id = ?", (master_sha256, run_id))
        if archived and previous_id is not None:
            self.db.execute("UPDATE run SET archived = ? WHERE id = ?", (archived, previous_id))

    def set_current(self, run: Run, archived_current: str | None = None) -> None:
        """Make an earlier run the period's current one (within a transaction begun by
        :meth:`begin`); ``archived_current`` is where the master of the run it replaces went."""
        now = self.current_run(run.period)
        if now is not None and archived_current:
            self.db.execute("UPDATE run SET archived = ? WHERE id = ?", (archived_current, now.id))
        self.db.execute("INSERT OR REPLACE INTO consolidation VALUES (?, ?)", (run.period, run.id))

    @contextmanager
    def transaction(self):
        """One write transaction: committed when the block succeeds, else rolled back.

        Raises:
            HistoryBusy: when another consolidation is writing.
        """
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise HistoryBusy(f"the history database {self.path} is busy: another consolidation is writing to it; try again when it has finished") from exc
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def recording(self, period: Period, run_at: str, register_fingerprint: str, master: str | None, values: list[Record] | list[dict], submissions: list[dict]):
        """Record a run around the block (the master being written and put in place), in
        one transaction committed only when the block succeeds; if it fails, or this process
        dies, nothing is recorded.

        The rows are inserted while the block writes the master, on a thread of this process
        (SQLite does its part without Python's lock; binding the values needs it, so of the
        1.9 s of inserting at 1,000 returns about 0.45 s comes off the run). The block gets
        a :class:`Recording` (and must leave ``values`` alone: the thread sorts the list by
        ref, in place): it calls ``wait()`` once the master is written and before it
        takes the old one's place, so that a master is never put in place for a run whose
        rows could not be inserted, and fills in ``master_sha256`` and ``archived`` (where the
        master it replaced went).

        Raises:
            HistoryBusy: when another consolidation is writing (before the block runs).
        """
        with self.transaction():
            recording = Recording(lambda: self._insert(period, run_at, register_fingerprint, master, values, submissions))
            try:
                yield recording
            finally:
                recording.thread.join()  # before the rollback or commit, whatever the block did
            ids = recording.wait()
            self._finish(*ids, master_sha256=recording.master_sha256, archived=recording.archived)

    def export_rows(self) -> tuple[tuple[str, ...], list[tuple]]:
        """Every item value of each period's current run: the column names and the rows."""
        cur = self.db.execute(
            f"SELECT {', '.join('iv.' + c for c in VALUE_COLUMNS)} FROM item_value iv JOIN consolidation c ON iv.run_id = c.run_id ORDER BY iv.period, iv.portfolio, iv.ref"
        )
        return VALUE_COLUMNS, cur.fetchall()

    def export_csv(self, out: str | Path) -> int:
        """Write every current item value as CSV (UTF-8 with a BOM, so Excel reads the
        accents); returns the number of rows.

        Text that a spreadsheet would run as a formula when the CSV is opened (commentary
        such as ``=HYPERLINK(...)``, typed by officers) gets a leading apostrophe, which Excel
        and LibreOffice show as plain text; numbers are written as they are.
        """
        names, rows = self.export_rows()
        with open(out, "w", newline="", encoding="utf-8-sig") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            w.writerows([tuple("'" + v if isinstance(v, str) and looks_like_formula(v) else v for v in row) for row in rows])
        return len(rows)


class ParquetUnavailable(Exception):
    """Parquet export needs pyarrow, an optional extra (``pip install 'derbyxl[parquet]'``)."""


def export_parquet(history: History, out: str | Path) -> int:
    """Write every current item value as Parquet (for BI tools that read it: Power BI, pandas,
    DuckDB), with the same columns as the CSV and typed: numbers as numbers. Returns the rows.

    Raises:
        ParquetUnavailable: when pyarrow is not installed.
    """
    try:
        import pyarrow  # noqa: F401 - pandas writes Parquet through it
    except ImportError as exc:
        raise ParquetUnavailable("Parquet export needs pyarrow: pip install 'derbyxl[parquet]' (or write CSV: --out history.csv)") from exc
    import pandas as pd

    names, rows = history.export_rows()
    frame = pd.DataFrame.from_records(rows, columns=list(names))
    for col in names:  # typed as the history keeps them (derbyxl.record)
        if VALUE_TYPES[col] == "REAL":
            frame[col] = frame[col].astype("float64")
        elif VALUE_TYPES[col] == "INTEGER":
            frame[col] = frame[col].astype("Int64")
    frame.to_parquet(out, index=False)
    return len(frame)


def _why(exc: BaseException, path: Path) -> str:
    """Words for why the database at ``path`` could not be opened."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        folder = path.parent
        if not folder.exists():
            return "its folder does not exist"
        if not os.access(folder, os.W_OK):
            return "its folder cannot be written"
        if path.exists() and not os.access(path, os.W_OK):
            return "the file cannot be written"
        return text
    if "not a database" in text:
        return "the file is not a derbyxl history database"
    return text
