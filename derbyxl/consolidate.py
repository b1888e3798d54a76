"""Consolidate a quarter: validate every return, merge the valid ones, compute statuses and
direction of travel from the register and history, write the master and record the quarter.

    from derbyxl.consolidate import consolidate
    result = consolidate("returns/", register, "2024-25-Q4", "outputs/")
    result.master, result.missing, result.rows
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from derbyxl import rag
from derbyxl.baseline import NO_COMPARISON, baseline, comparable, year_ago
from derbyxl.cache import FileCache
from derbyxl.files import sha256_of
from derbyxl.findings import FileReport, Report
from derbyxl.guard import DEFAULT_LIMITS, Limits
from derbyxl.history import History, Run, items_with_data
from derbyxl.periods import Period, period_key, uk_time
from derbyxl.record import Record
from derbyxl.register import Register
from derbyxl.runner import few_collections, give_back_memory
from derbyxl.validate import runner_for, validate_paths
from derbyxl.xlsx_util import OutputNotWritable, ensure_folder


class ConsolidationBusy(Exception):
    """Another consolidation is running in the same output folder."""


class MasterNotWritten(Exception):
    """The new master could not be put in place of the old one (on Windows, because the old
    one is open in Excel). Nothing was recorded in the history."""


class Refused(Exception):
    """The consolidation stopped before writing anything: the master and the history are as
    they were. The message says why and what to do."""


class NoValidReturn(Refused):
    """Not one valid return for the quarter: a master of nothing would only hide that."""


class RegisterMismatch(Refused):
    """Most returns were made from another register than the one loaded (``--register``
    forgotten or wrong): their items cannot be matched, so nothing is merged."""


class WouldLoseData(Refused):
    """The quarter is already recorded, and this run would record less (fewer valid returns,
    fewer items with data) or come from another register; ``--replace`` overrides."""


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
    rows: list[Record] = field(default_factory=list)
    generated_at: str = ""
    #: The quarters the Trends sheet shows (keys, oldest first, this one last: recorded ones
    #: only) and each measure's (actual, status) in them, by ref; None in a quarter without one.
    trend_periods: list[str] = field(default_factory=list)
    trends: dict[str, list[tuple[float | None, str | None] | None]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.invalid


@contextmanager
def _lock(out_dir: Path):
    """One consolidation at a time in ``out_dir``: a lock on ``out_dir/.derbyxl.lock``
    (filelock's, which the system releases if this process dies)."""
    from filelock import FileLock, Timeout

    ensure_folder(out_dir)  # a folder that cannot be written is said as such, not as "busy"
    lock = FileLock(out_dir / ".derbyxl.lock", timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        raise ConsolidationBusy(f"another consolidation is writing to {out_dir}; wait for it to finish and run again") from exc
    except OSError as exc:
        raise OutputNotWritable(out_dir / ".derbyxl.lock", exc.strerror or str(exc)) from exc
    try:
        yield
    finally:
        lock.release()


def _received(path: str) -> str:
    try:
        return dt.datetime.fromtimestamp(os.stat(path).st_mtime, dt.timezone.utc).replace(microsecond=0).isoformat()
    except OSError:
        return ""


def choose_submissions(report: Report, register: Register, period: Period) -> tuple[list[Submission], dict[str, Submission]]:
    """Pick, per portfolio, the latest valid return: the one signed off latest; when sign-off
    dates are equal, the one the workbook says was saved later (``docProps/core.xml``), then
    the one whose file is newer, then by name. The note of the one used says which rule
    decided, so the Submissions sheet shows why a resubmission won.

    Returns:
        every submission (with ``used`` and a note on those superseded) and the one used per portfolio.
    """
    subs = [Submission(fr, _received(fr.path)) for fr in report.files]
    rivals: dict[str, list[Submission]] = {}
    for s in subs:
        fr = s.report
        if fr.valid and period_key(fr.period) == period.key and fr.portfolio is not None:
            rivals.setdefault(fr.portfolio, []).append(s)
    chosen: dict[str, Submission] = {}
    for portfolio, group in rivals.items():
        group.sort(key=_recency, reverse=True)
        chosen[portfolio] = best = group[0]
        best.used = True
        best.note = "used" + (f" ({_decided_by(best, group[1])})" if len(group) > 1 else "")
    for s in subs:
        fr = s.report
        if s.used:
            continue
        if fr.portfolio in chosen and fr.valid and period_key(fr.period) == period.key:
            s.note = f"superseded by {chosen[fr.portfolio].report.workbook}"
        elif not fr.valid:
            s.note = f"left out: {fr.errors} error(s)"
        else:
            s.note = "left out"
    return subs, chosen


def _recency(s: Submission) -> tuple:
    fr = s.report
    return (fr.signed_date or "", fr.saved_at or "", s.received, fr.workbook)


def _decided_by(best: Submission, runner_up: Submission) -> str:
    """Which rule made ``best`` win over the next one."""
    a, b = _recency(best), _recency(runner_up)
    if a[0] != b[0]:
        return "signed off latest"
    if a[1] != b[1]:
        return "same sign-off date; saved later"
    if a[2] != b[2]:
        return "same sign-off date and save time; newer file"
    return "same dates; last by name"


def build_rows(
    register: Register,
    period: Period,
    chosen: dict[str, Submission],
    history: History | None,
    latest: dict[str, tuple[str, float]] | None = None,
) -> list[Record]:
    """One :class:`~derbyxl.record.Record` per register item, with status and direction of
    travel (its period is the quarter's, not set on each): the record the chosen return gave
    (``chosen``' report rows), completed from the register and the history, or a new one
    saying "No return".

    A measure is shown with the target for the quarter (:meth:`Item.target_for`) and its
    baseline (:mod:`derbyxl.baseline`). Its direction of travel in the short term compares
    with the quarter before (on the footing of the quarter targets, where the register
    profiles them) and year on year with the same quarter last year, each only where that
    value exists ("No comparison" otherwise), and says which period it compared.
    """
    if latest is None:
        latest = history.latest_values(before=period) if history else {}
    then = history.values_for(period.year_ago) if history else {}
    given: dict[str, Record] = {}
    for s in chosen.values():
        for rec in s.report.rows:
            rec.sha256 = s.report.sha256  # its source_file is the workbook's name already
            given[rec.ref] = rec
    rows = []
    direction = rag.direction_of_travel
    quarter, before_key, before_label = period.quarter, period.previous.key, period.previous.label
    year_ago_label = period.year_ago.label  # a year-on-year comparison is with that quarter (baseline.year_ago)
    for item in register.items:
        ref = item.ref
        row = given.get(ref)
        returned = row is not None
        measure = item.kind == "measure"
        earlier = baseline(item, period, latest) if measure else None
        if not returned:
            row = Record(ref=ref, kind=item.kind, portfolio=item.portfolio, status=rag.NO_RETURN)
        row.theme = item.theme
        row.description = item.description
        row.unit = item.unit
        row.polarity = item.polarity
        row.target = item.target_for(quarter) if measure else None
        row.previous_actual = earlier.value if earlier else None
        if returned:
            actual, score = row.actual, row.score
            if item.kind == "risk" and score is not None:
                row.status_word = f"Risk score {score}"
            elif measure and actual is not None:
                if earlier is not None and earlier.period == before_key:
                    row.dot_short = direction(actual, comparable(item, earlier, period), item.polarity)
                    row.dot_short_against = before_label
                else:
                    row.dot_short = NO_COMPARISON
                ago = year_ago(item, period, then)
                if ago is not None:
                    row.dot, row.dot_against = direction(actual, ago.value, item.polarity), year_ago_label
                else:
                    row.dot = NO_COMPARISON
        rows.append(row)
    return rows


@few_collections()
def consolidate(
    returns: str | Path,
    register: Register,
    period: Period | str,
    out_dir: str | Path,
    *,
    history_path: str | Path | None = None,
    cache_path: str | Path | None = None,
    strict: bool = False,
    replace: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    generated_at: dt.datetime | None = None,
    use_cache: bool = True,
    workers: int | None = None,
) -> Result:
    """Validate and merge the returns in ``returns`` into a master workbook in ``out_dir``.

    A consolidation never silently makes a recorded quarter worse: with no valid return it
    writes nothing, and when the quarter is already recorded it stops before writing if this
    run has fewer valid returns, fewer items with data or another register, unless
    ``replace``. A master that is replaced is kept in ``out_dir/archive/``, and every run is
    kept in the history, so any earlier state can be restored (:func:`restore`).

    Args:
        returns: the folder of returned workbooks (or a list of files).
        register: the year's register.
        period: the quarter.
        out_dir: where the master goes (``master_<period>.xlsx``).
        history_path: the SQLite history (``out_dir/history.sqlite`` by default).
        cache_path: where per-file results are kept (:class:`derbyxl.cache.FileCache`; the
            history database by default; the command line uses the user's cache folder).
        strict: write nothing when any portfolio's return is missing or invalid.
        replace: replace a recorded quarter even with less (the old master is archived).
        limits: bounds on the work per returned file.
        generated_at: the time stamped into the master (now by default).
        use_cache: reuse per-file results kept in the history database by earlier runs
            (``derbyxl validate`` keeps them); False reads and checks every file again.
        workers: worker processes reading the returns (:mod:`derbyxl.runner`).

    Returns:
        A :class:`Result`; ``master`` is ``None`` when strict mode refused to write.

    Raises:
        RegisterMismatch: most returns come from another register; nothing written.
        NoValidReturn: no valid return for the quarter; nothing written.
        WouldLoseData: the recorded quarter would be replaced by less; nothing written.
        ConsolidationBusy: another consolidation is running in ``out_dir``.
        MasterNotWritten: the new master could not replace the old one (open in Excel on
            Windows); the old master and the history are as they were.
        derbyxl.history.HistoryBusy: the history is locked by another writer.
        derbyxl.xlsx_util.OutputNotWritable: ``out_dir`` or the history cannot be written.
    """
    from derbyxl.master import master_filename, write_master
    from derbyxl.xlsx_util import NotReplaced, atomic_path

    period = Period.parse(period)
    out_dir = Path(out_dir)
    history_path = Path(history_path) if history_path else out_dir / "history.sqlite"
    generated_at = (generated_at or dt.datetime.now(dt.timezone.utc)).replace(microsecond=0)
    sources = returns if isinstance(returns, (list, tuple)) else [returns]
    with _lock(out_dir), History(history_path) as history, FileCache(cache_path or history_path) as cache:
        latest = history.latest_values(before=period)  # each measure's baseline, for the checks and the rows
        # Workers of its own, ended once the files are read: each holds a copy of the register,
        # not wanted while the master is written (validate_paths would keep them for later calls).
        runner = runner_for(register, workers)
        try:
            report = validate_paths(sources, register, period=period, limits=limits, history=history, latest=latest, cache=cache if use_cache else None, runner=runner)
        except BaseException:
            runner.close(stop=True)
            raise
        runner.close(wait=False)  # idle: they end while the quarter is put together
        if report.other_register:
            raise RegisterMismatch(f"{report.other_register}. Nothing was written; the master and history are as they were.")
        subs, chosen = choose_submissions(report, register, period)
        if not chosen:
            raise NoValidReturn(_no_valid_return(report, period))
        invalid = sorted({s.report.portfolio for s in subs if not s.report.valid and s.report.portfolio and s.report.portfolio not in chosen})
        missing = [p for p in register.portfolios if p not in chosen]
        rows = build_rows(register, period, chosen, history, latest)
        give_back_memory()
        result = Result(period, None, report, subs, missing, invalid, rows, generated_at.isoformat())
        from derbyxl.master import MAX_PORTFOLIO_SHEETS

        if len(register.portfolios) <= MAX_PORTFOLIO_SHEETS:  # the master has a Trends sheet
            result.trend_periods, result.trends = trends(history, period, rows)
        if strict and (missing or any(not s.report.valid for s in subs)):
            return result
        values = [r for r in rows if r.status != rag.NO_RETURN]
        recorded = history.current_run(period)
        if recorded is not None and not replace:
            _refuse_if_worse(recorded, register, len(chosen), values, out_dir)
        target = out_dir / master_filename(period)
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
        # The new master takes the old one's place inside the recording, so that when it
        # cannot (on Windows, the old one open in Excel), the quarter is not recorded either.
        # Paths recorded whole, so that `history restore` finds them from any folder.
        with history.recording(period, result.generated_at, register.fingerprint, str(target.resolve()), values, submissions) as recording:
            archived = None
            try:
                with atomic_path(target) as tmp:
                    write_master(tmp, register, result)
                    recording.wait()  # the rows are in before the master takes the old one's place
                    recording.master_sha256 = sha256_of(tmp)
                    archived = archive_master(target, period, recorded)
                    recording.archived = str(archived.resolve()) if archived else None
            except NotReplaced as exc:
                if archived is not None:
                    archived.unlink(missing_ok=True)
                raise MasterNotWritten(
                    f"the master could not be written to {target} ({exc.strerror or exc}); if it is open in Excel or another program, close it and run again"
                ) from exc
        result.master = target
        return result


#: How many quarters the Trends sheet shows at most, this one included.
TREND_QUARTERS = 8


def trends(history: History, period: Period, rows: list[Record]) -> tuple[list[str], dict[str, list]]:
    """Each measure's actual and status over the last recorded quarters (at most
    :data:`TREND_QUARTERS`, this one last, from the history's current runs: only quarters that
    were really recorded appear)."""
    earlier = [p for p in history.periods() if p < period.key][-(TREND_QUARTERS - 1) :]
    recorded = {p: history.values_for(p) for p in earlier}
    out: dict[str, list] = {}
    for row in rows:
        if row.kind != "measure":
            continue
        ref = row.ref
        series = []
        for p in earlier:
            v = recorded[p].get(ref)
            series.append((v["actual"], v["status"]) if v else None)
        series.append((row.actual, row.status) if row.status != rag.NO_RETURN else None)
        out[ref] = series
    return [*earlier, period.key], out


def _no_valid_return(report: Report, period: Period) -> str:
    """Why no return could be used, in words that point at the likely slip."""
    files = report.files
    if not files:
        also = f" (only files that are not workbooks: {', '.join(report.ignored[:5])})" if report.ignored else ""
        return f"no returns were found{also}, so nothing was written for {period.label}; check the returns folder"
    other = Counter(fr.period for fr in files if fr.period and period_key(fr.period) != period.key)
    parts = []
    for key, n in other.most_common():
        label = Period.parse(key).label if period_key(key) else key
        parts.append(f"{n} {'is' if n == 1 else 'are'} for {label}")
    if other:
        parts[-1] += " (is this the right folder, and the right --period?)"
    wrong_type = sum(1 for fr in files if any(f.code in _NOT_XLSX for f in fr.findings))
    if wrong_type:
        parts.append(f"{wrong_type} {'is' if wrong_type == 1 else 'are'} not a workbook derbyxl reads (save as Excel Workbook .xlsx, or ODF Spreadsheet .ods)")
    foreign = sum(1 for fr in files if any(f.code in ("unknown-portfolio", "other-register") for f in fr.findings))
    if foreign:
        parts.append(f"{foreign} {'was' if foreign == 1 else 'were'} made from another register (pass --register with the register the templates came from)")
    rest = sum(1 for fr in files if not fr.valid and period_key(fr.period) == period.key) - foreign
    if rest > 0:
        parts.append(f"{rest} {'has' if rest == 1 else 'have'} errors (derbyxl validate lists them)")
    return f"no valid return for {period.label} among {len(files)} file(s): " + "; ".join(parts) + ". Nothing was written; the master and history are as they were."


_NOT_XLSX = ("wrong-file-type", "legacy-xls", "macro-workbook", "password-protected")


def _refuse_if_worse(recorded: Run, register: Register, valid_returns: int, values: list[Record], out_dir: Path) -> None:
    """Raise :class:`WouldLoseData` when this run would record less than the current one."""
    with_data = items_with_data(values)
    lost = []
    if valid_returns < recorded.valid_returns:
        lost.append(f"{recorded.valid_returns} valid returns were recorded, this run has {valid_returns}")
    if with_data < recorded.items_with_data:
        lost.append(f"{recorded.items_with_data} items with data were recorded, this run has {with_data}")
    if register.fingerprint != recorded.register_fingerprint:
        lost.append(f"it was recorded from register {recorded.register_fingerprint}, this run loaded {register.fingerprint} ({register.source or 'given in code'})")
    if not lost:
        return
    period = Period.parse(recorded.period)
    raise WouldLoseData(
        f"{period.label} is already recorded (run {recorded.id}, {uk_time(recorded.run_at)}) and this run would replace it with less: "
        + "; ".join(lost)
        + f". Nothing was written. Check --register, --period and the returns folder; to replace it all the same, run again with --replace "
        f"(the current master is then kept in {out_dir / ARCHIVE}, and `derbyxl history restore {period.key} {recorded.id}` brings it back)."
    )


#: The folder, beside the master, where every master that was replaced is kept.
ARCHIVE = "archive"


def archive_master(target: Path, period: Period, recorded: Run | None) -> Path | None:
    """Keep the master now at ``target`` (if any) in the archive folder beside it, named by its
    period and the time of the run that made it (the file's own time when no run is known).

    Returns:
        where it was kept, or None when there was no master.
    """
    if not target.is_file():
        return None
    stamp = None
    if recorded is not None:
        try:
            stamp = dt.datetime.fromisoformat(recorded.run_at).astimezone(dt.timezone.utc)
        except ValueError:
            stamp = None
    if stamp is None:
        stamp = dt.datetime.fromtimestamp(target.stat().st_mtime, dt.timezone.utc)
    folder = ensure_folder(target.parent / ARCHIVE)
    base = f"{target.stem}_{stamp.strftime('%Y%m%dT%H%M%SZ')}"
    dest, n = folder / f"{base}{target.suffix}", 2
    while dest.exists():
        dest, n = folder / f"{base}-{n}{target.suffix}", n + 1
    try:
        os.link(target, dest)  # the same bytes under a second name: instant, and nothing copied
    except OSError:
        shutil.copy2(target, dest)
    return dest


class RestoreError(Exception):
    """A run cannot be restored (unknown, or its master is gone or changed)."""


def restore(history_path: str | Path, period: Period | str, run_id: int) -> Run:
    """Make an earlier run of a period current again, master included: the master now in its
    place is archived first, so restoring is itself undone by restoring that run.

    Returns:
        the run restored.

    Raises:
        RestoreError: the run is not one of the period's, or its archived master is missing
            or not the one recorded (its SHA-256 differs).
        ConsolidationBusy, HistoryBusy: another consolidation is writing.
    """
    from derbyxl.xlsx_util import atomic_path

    period = Period.parse(period)
    with History(history_path) as history:
        run = history.run(run_id)
        if run is None or run.period != period.key:
            known = ", ".join(str(r.id) for r in history.runs(period)) or "none"
            raise RestoreError(f"{period.label} has no run {run_id} (its runs: {known}; see derbyxl history runs)")
        target = Path(run.master) if run.master else None
        if target is None:
            raise RestoreError(f"run {run_id} wrote no master")
        with _lock(target.parent), history.transaction():
            now = history.current_run(period)
            if now is not None and now.id == run.id and target.is_file() and sha256_of(target) == run.master_sha256:
                return run  # already the current one
            source = Path(run.archived) if run.archived else target
            if not source.is_file() or (run.master_sha256 and sha256_of(source) != run.master_sha256):
                raise RestoreError(f"the master of run {run_id} ({source}) is missing or has changed since it was archived; its values can still be exported, but the workbook cannot be restored")
            data = source.read_bytes()
            with atomic_path(target) as tmp:
                tmp.write_bytes(data)
                archived = archive_master(target, period, now)
            history.set_current(run, str(archived.resolve()) if archived else None)
        return history.run(run_id)
