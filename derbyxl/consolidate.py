"""Consolidate a quarter: validate every return, merge the valid ones, compute statuses and
direction of travel from the register and history, write the master and record the quarter.

    from derbyxl.consolidate import consolidate
    result = consolidate("returns/", register, "2024-25-Q4", "outputs/")
    result.master, result.missing, result.rows
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from derbyxl import rag
from derbyxl.cache import FileCache
from derbyxl.findings import FileReport, Report
from derbyxl.guard import DEFAULT_LIMITS, Limits
from derbyxl.history import History
from derbyxl.periods import Period
from derbyxl.prescan import Prescan
from derbyxl.register import Register
from derbyxl.validate import validate_paths
from derbyxl.workers import parent_only


try:
    import fcntl
except ImportError:  # Windows: a lock on the lock file's first byte instead
    fcntl = None
    import msvcrt


class ConsolidationBusy(Exception):
    """Another consolidation is running in the same output folder."""


class MasterNotWritten(Exception):
    """The new master could not be put in place of the old one (on Windows, because the old
    one is open in Excel). Nothing was recorded in the history."""


@dataclass
class Submission:
    """One returned file, as the Submissions sheet lists it."""

    report: FileReport
    received: str
    used: bool = False
    note: str = ""


@dataclass
class Result:
    """What :func:`consolidate` did."""

    period: Period
    master: Path | None
    report: Report
    submissions: list[Submission]
    missing: list[str]
    invalid: list[str]
    rows: list[dict] = field(default_factory=list)
    generated_at: str = ""

    @property
    def complete(self) -> bool:
        return not self.missing and not self.invalid


@contextmanager
def _lock(out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ".derbyxl.lock"
    fh = open(path, "a+")
    locked = False
    try:
        try:
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            locked = True
        except OSError as exc:  # BlockingIOError from flock; on Windows, a PermissionError
            raise ConsolidationBusy(f"another consolidation is writing to {out_dir}; wait for it to finish and run again") from exc
        parent_only(fh.fileno())
        yield
    finally:
        parent_only(fh.fileno(), keep=False)
        if locked and fcntl is None:  # pragma: no cover - Windows
            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        fh.close()


def _received(path: str) -> str:
    try:
        return dt.datetime.fromtimestamp(os.stat(path).st_mtime, dt.timezone.utc).replace(microsecond=0).isoformat()
    except OSError:
        return ""


def choose_submissions(report: Report, register: Register, period: Period) -> tuple[list[Submission], dict[str, Submission]]:
    """Pick, per portfolio, the latest valid return: by sign-off date, then file time.

    Returns:
        every submission (with ``used`` and a note on those superseded) and the one used per portfolio.
    """
    subs = [Submission(fr, _received(fr.path)) for fr in report.files]
    chosen: dict[str, Submission] = {}
    for s in subs:
        fr = s.report
        if not fr.valid or fr.period != period.key or fr.portfolio is None:
            continue
        best = chosen.get(fr.portfolio)
        key = (fr.signed_date or "", s.received, fr.workbook)
        if best is None or key > (best.report.signed_date or "", best.received, best.report.workbook):
            chosen[fr.portfolio] = s
    for s in subs:
        fr = s.report
        if fr.portfolio in chosen and chosen[fr.portfolio] is s:
            s.used = True
            s.note = "used"
        elif fr.portfolio in chosen and fr.valid and fr.period == period.key:
            s.note = f"superseded by {chosen[fr.portfolio].report.workbook}"
        elif not fr.valid:
            s.note = f"left out: {fr.errors} error(s)"
        else:
            s.note = "left out"
    return subs, chosen


def build_rows(register: Register, period: Period, chosen: dict[str, Submission], history: History | None) -> list[dict]:
    """One row per register item with status and direction of travel."""
    prev_q = history.values_for(period.previous) if history else {}
    year_ago = history.values_for(period.year_ago) if history else {}
    by_ref = {}
    for s in chosen.values():
        for rec in s.report.rows:
            by_ref[rec["ref"]] = (rec, s)
    rows = []
    key = period.key
    nothing = (None, None)
    direction = rag.direction_of_travel
    for item in register.items:
        ref = item.ref
        rec, sub = by_ref.get(ref, nothing)
        short_before = prev_q[ref]["actual"] if ref in prev_q else None
        if short_before is None:
            short_before = item.previous_actual
        row = {
            "period": key,
            "ref": ref,
            "kind": item.kind,
            "portfolio": item.portfolio,
            "theme": item.theme,
            "description": item.description,
            "unit": item.unit,
            "target": item.target,
            "polarity": item.polarity,
            "actual": None,
            "status": "No return",
            "status_word": None,
            "score": None,
            "commentary": None,
            "note": None,
            "source_file": None,
            "sha256": None,
            "dot": None,
            "dot_short": None,
            "previous_actual": short_before,
        }
        if rec is not None:
            actual = row["actual"] = rec.get("actual")
            row["status"] = rec.get("status")
            row["status_word"] = rec.get("status_word")
            score = row["score"] = rec.get("score")
            row["commentary"] = rec.get("commentary")
            row["note"] = rec.get("note")
            row["source_file"] = sub.report.workbook
            row["sha256"] = sub.report.sha256
            if item.kind == "risk" and score is not None:
                row["status_word"] = f"Risk score {score}"
            elif item.kind == "measure":
                long_before = year_ago[ref]["actual"] if ref in year_ago else None
                if long_before is None:
                    long_before = item.previous_actual
                row["dot_short"] = direction(actual, short_before, item.polarity)
                row["dot"] = direction(actual, long_before, item.polarity)
        rows.append(row)
    return rows


def consolidate(
    returns: str | Path,
    register: Register,
    period: Period | str,
    out_dir: str | Path,
    *,
    history_path: str | Path | None = None,
    strict: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    generated_at: dt.datetime | None = None,
    use_cache: bool = True,
    prescan: Prescan | None = None,
) -> Result:
    """Validate and merge the returns in ``returns`` into a master workbook in ``out_dir``.

    Args:
        returns: the folder of returned workbooks (or a list of files).
        register: the year's register.
        period: the quarter.
        out_dir: where the master goes (``master_<period>.xlsx``).
        history_path: the SQLite history (``out_dir/history.sqlite`` by default).
        strict: write nothing when any portfolio's return is missing or invalid.
        limits: bounds on the work per returned file.
        generated_at: the time stamped into the master (now by default).
        use_cache: reuse per-file results kept in the history database by earlier runs
            (``derbyxl validate`` keeps them); False reads and checks every file again.
        prescan: the pre-scan of the returns started earlier (:mod:`derbyxl.prescan`).

    Returns:
        A :class:`Result`; ``master`` is ``None`` when strict mode refused to write.

    Raises:
        ConsolidationBusy: another consolidation is running in ``out_dir``.
        MasterNotWritten: the new master could not replace the old one (open in Excel on
            Windows); the old master and the history are as they were.
        derbyxl.history.HistoryBusy: the history is locked by another writer.
    """
    from derbyxl.master import master_filename, write_master

    period = Period.parse(period)
    out_dir = Path(out_dir)
    history_path = Path(history_path) if history_path else out_dir / "history.sqlite"
    generated_at = (generated_at or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    sources = returns if isinstance(returns, (list, tuple)) else [returns]
    with _lock(out_dir), History(history_path) as history, FileCache(history_path) as cache:
        previous = history.values_for(period.previous)
        report = validate_paths(sources, register, period=period, limits=limits, previous=previous, cache=cache if use_cache else None, prescan=prescan)
        subs, chosen = choose_submissions(report, register, period)
        invalid = sorted({s.report.portfolio for s in subs if not s.report.valid and s.report.portfolio and s.report.portfolio not in chosen})
        missing = [p for p in register.portfolios if p not in chosen]
        rows = build_rows(register, period, chosen, history)
        result = Result(period, None, report, subs, missing, invalid, rows, generated_at.isoformat())
        if strict and (missing or any(not s.report.valid for s in subs)):
            return result
        target = out_dir / master_filename(period)
        from derbyxl.xlsx_util import NotReplaced, atomic_path

        submissions = [
            {
                "portfolio": s.report.portfolio,
                "file": s.report.workbook,
                "sha256": s.report.sha256,
                "received": s.received,
                "signed_by": s.report.signed_by,
                "signed_date": s.report.signed_date,
                "valid": int(s.report.valid),
                "errors": s.report.errors,
                "warnings": s.report.warnings,
                "used": int(s.used),
                "note": s.note,
            }
            for s in subs
        ]
        values = [r for r in rows if r["status"] != "No return"]
        # The new master takes the old one's place inside the recording, so that when it
        # cannot (on Windows, the old one open in Excel), the quarter is not recorded either.
        with history.recording(period, result.generated_at, register.fingerprint, str(target), values, submissions):
            try:
                with atomic_path(target) as tmp:
                    write_master(tmp, register, result)
            except NotReplaced as exc:
                raise MasterNotWritten(
                    f"the master could not be written to {target} ({exc.strerror or exc}); if it is open in Excel or another program, close it and run again"
                ) from exc
        result.master = target
        return result
