"""Validate returned workbooks: the library entry points behind ``derbyxl validate``.

    from derbyxl import load_register, validate_file
    report = validate_file("returns/Governance-and-Finance_2024-25-Q4.xlsx", load_register("register.xlsx"))
    report.findings      # Finding records
    report.rows          # the items' records (derbyxl.record.Record): clean values, statuses

Every file is handled on its own: a broken file gets findings and the others carry on.
Files are only read, never written.
"""

from __future__ import annotations

import importlib
import marshal
import os
import time
import zlib
from contextlib import nullcontext
from dataclasses import fields as dataclass_fields
from operator import attrgetter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from derbyxl import checks
from derbyxl.cache import FileCache, context_for, file_key
from derbyxl.findings import FileReport, Finding, Report, finding, sort_key
from derbyxl.guard import DEFAULT_LIMITS, Limits, scan
from derbyxl.files import display_names, expand_paths, sha256_of
from derbyxl.periods import Period, PeriodError
from derbyxl.read import ReadError, read_return
from derbyxl.record import Record
from derbyxl.register import Register
from derbyxl.runner import Failed, Runner, few_collections, give_back_memory, kept

#: Set DERBYXL_DEBUG=1 (or pass --debug) to let unexpected exceptions propagate with a traceback.
DEBUG_ENV = "DERBYXL_DEBUG"


@few_collections()
def validate_paths(
    paths: Iterable[str | Path],
    register: Register,
    *,
    period: Period | str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    previous: dict[str, dict] | None = None,
    history=None,
    latest: dict[str, tuple[str, float]] | None = None,
    progress: Callable[[Path], None] | None = None,
    cache: FileCache | None = None,
    workers: int | None = None,
    runner: Runner | None = None,
) -> Report:
    """Validate every returned workbook in ``paths`` (files or folders).

    Args:
        paths: files and folders.
        register: the year's register.
        period: the quarter expected; by default the latest period any return claims, so a
            stale return among current ones is reported.
        limits: bounds on the work per file.
        previous: last quarter's values and statuses by ref (by default from ``history``).
        history: the :class:`derbyxl.history.History` of earlier quarters: each measure's
            baseline for plausibility is its latest actual there (:mod:`derbyxl.baseline`),
            else the register's Previous actual.
        latest: those latest actuals when the caller has them already
            (:meth:`derbyxl.history.History.latest_values` for the period).
        progress: called with each file once it has been read (not for files in the cache).
        cache: per-file results kept by SHA-256 (:class:`derbyxl.cache.FileCache`): files
            found there (checked against the same register, with the same limits) are not
            read again, and files read are added to it.
        workers: processes reading files at once (default
            :func:`derbyxl.runner.default_workers`). Files are always read in worker
            processes (:mod:`derbyxl.runner`), never in this one.
        runner: the workers to use, made by :func:`runner_for` with this register (a web
            portal's, long-lived; or one the caller ends when it wants the workers' memory
            back). By default the workers are kept for later calls with the same register
            (:func:`derbyxl.runner.kept`) and end with the process.

    Returns:
        A :class:`Report` with one :class:`FileReport` per file, in path order.
    """
    skipped: list[Path] = []
    files = expand_paths(paths, skipped)
    names = display_names(files)
    expected = Period.parse(period) if period else None
    shas = [_sha256_within(f, limits) for f in files]
    keys = [file_key(sha, f) if sha else None for sha, f in zip(shas, files)]
    decoded: dict[int, tuple[FileReport, list[Record]]] = {}
    context = context_for(register.fingerprint, limits)
    if cache is not None:
        stored = cache.get_many([k for k in keys if k], context)
        for i, key in enumerate(keys):
            if key in stored:
                try:
                    decoded[i] = decode_stage(stored[key], names[i], str(files[i]), register)
                except Exception:  # noqa: BLE001 - a damaged cache entry means checking the file again
                    pass
        del stored
    todo = [(i, files[i], names[i]) for i in range(len(files)) if i not in decoded]
    if runner is not None and runner.setup_args[0] is not register:
        raise ValueError("the runner was made for another register: make it with runner_for(register)")
    # Results are kept in the cache a few hundred files at a time, as they come, rather than
    # all held to the end (20 MB at 3,000 returns).
    keep: dict[str, bytes] = {}
    for i, blob, result in _stage_all(todo, register, limits, workers, progress, runner) if todo else ():
        decoded[i] = result
        if cache is not None and keys[i] and _cacheable(blob):
            keep[keys[i]] = blob
            if len(keep) >= _KEEP_AT_ONCE:
                cache.put_many(keep, context)
                keep = {}
    if cache is not None and keep:
        cache.put_many(keep, context)
    give_back_memory()  # the files' results as they came, decompressed and decoded
    from derbyxl.schemas import check_values

    reports: list[FileReport] = []
    records_by_file: list[list[Record]] = []
    for i in range(len(files)):
        report, records = decoded[i]
        report.sha256 = shas[i]
        reports.append(report)
        records_by_file.append(records)
    if expected is None:
        expected = _latest_period(reports)
    records: list[Record] = []
    for report, recs in zip(reports, records_by_file):
        wrong = checks.check_period(report, expected)
        if wrong:
            report.findings.append(wrong)
            continue
        report.rows = recs
        records.extend(recs)
    by_name = {r.workbook: r for r in reports}
    other_register = checks.check_register_source(reports, register)
    for f in checks.check_duplicate_returns(reports, expected):
        by_name[f.workbook].findings.append(f)
    for f in check_values(records, register, expected.quarter if expected else 4):
        by_name[f.workbook].findings.append(f)
    give_back_memory()  # the frames pandera checked
    for rec in records:
        if rec.bad:  # a value found bad across files has no status
            checks.compute_status(rec, register.by_ref[rec.ref], expected.quarter)
    if history is not None and expected is not None:
        if latest is None:
            latest = history.latest_values(before=expected)
        if previous is None:
            previous = history.values_for(expected.previous)
    for f in checks.check_cross_field(records, register, expected, latest, previous) if expected is not None else ():
        by_name[f.workbook].findings.append(f)
    for report in reports:
        report.findings.sort(key=sort_key)
    return Report(reports, period=expected.key if expected else None, other_register=other_register, ignored=[p.name for p in skipped])


def _sha256_within(path: Path, limits: Limits) -> str | None:
    """The file's SHA-256, or None when it is missing, unreadable or over the size limit."""
    try:
        if not path.is_file() or path.stat().st_size > limits.max_file_bytes:
            return None
    except OSError:
        return None
    return sha256_of(path)


def _latest_period(reports: list[FileReport]) -> Period | None:
    periods = []
    for r in reports:
        try:
            periods.append(Period.parse(r.period or ""))
        except PeriodError:
            pass
    return max(periods) if periods else None


# -- the per-file stage: everything that depends only on the file's bytes and the register --


def check_file(path: Path, name: str, register: Register, limits: Limits = DEFAULT_LIMITS) -> tuple[FileReport, list[Record]]:
    """Pre-scan, read and check one file on its own: identity, structure, sign-off, values.

    The checks across files (the expected period, the pandera schemas over all returns,
    cross-field rules) are left to :func:`validate_paths`. This runs the readers on the
    file in the calling process: :func:`validate_paths` calls it in worker processes.

    Returns:
        the file's report (findings so far) and its records of normalised values (which get
        their workbook and portfolio when decoded: :func:`decode_stage`).
    """
    report = FileReport(workbook=name, path=str(path))
    started = time.monotonic()
    try:
        return report, _check(report, path, register, limits, started)
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        report.findings.append(finding("corrupt-file", name, f"it could not be read ({type(exc).__name__}: {exc})"))
        return report, []


def _check(report: FileReport, path: Path, register: Register, limits: Limits, started: float) -> list[Record]:
    name = report.workbook
    res = scan(path, limits, workbook=name)
    report.findings.extend(res.findings)
    if not res.ok:
        return []
    try:
        raw = read_return(path, max_rows=limits.max_rows, known_refs=register.by_ref.keys())
    except ReadError as exc:
        report.findings.append(finding(exc.code, name, exc.message, sheet=exc.sheet))
        return []
    for sheet_name, ranges in res.merged.items():  # merged cells the reader could not report
        if sheet_name in raw.sheets and not raw.sheets[sheet_name].merged:
            raw.sheets[sheet_name].merged = ranges
    report.register_fingerprint = (raw.stamp or {}).get("register_fingerprint") or None
    report.saved_at = res.saved_at
    ident, found = checks.check_identity(raw, register, name)
    report.findings.extend(found)
    report.portfolio, report.period = ident.portfolio, ident.period
    if not ident.ok:
        return []
    items = register.for_portfolio(ident.portfolio)
    report.items = len(items)
    rows, found = checks.check_structure(raw, items, register, name)
    report.findings.extend(found)
    sign, report.signed_by, report.signed_date = checks.check_sign_off(raw, name)
    report.findings.extend(sign)
    records, found = checks.normalise_rows(rows, items, name, res.error_cells)
    report.findings.extend(found)
    if time.monotonic() - started > limits.max_seconds:
        report.findings.append(finding("time-limit", name, f"over {limits.max_seconds:g} s"))
        return []
    by_ref = register.by_ref
    quarter = Period.parse(ident.period).quarter  # rated against the targets of its own quarter
    for rec in records:
        checks.compute_status(rec, by_ref[rec.ref], quarter)
    return records


_REPORT_FIELDS = ("portfolio", "period", "signed_by", "signed_date", "register_fingerprint", "saved_at", "items")
_FINDING_FIELDS = ("sheet", "cell", "ref", "code", "severity", "message", "hint")
#: Findings that depend on the moment, not the file: a result holding one is not cached.
_UNCACHEABLE = ("time-limit", "reader-crashed")


def encode_stage(report: FileReport, records: list[Record]) -> bytes:
    """One file's stage result as compact bytes (for the cache and between processes).

    marshal, not JSON: four times quicker both ways, and what many records share (a sheet
    name, a status, a sheet's column letters, the empty set of bad columns) is written once
    and comes back shared. Its format belongs to the Python version, which is part of the
    cache's key (:data:`derbyxl.cache.CACHE_VERSION`). Each record goes as a tuple of its
    fields in order (a tuple is read back about five times quicker than a dict), without its
    source file (the workbook's name) and portfolio (the same file may come back under
    another name), set when decoded.
    """
    rows = []
    for rec in records:
        values = list(_FIELDS_OF(rec))
        values[_BAD_AT] = frozenset(rec.bad) if rec.bad else NO_BAD
        rows.append(tuple(values))
    payload = (
        tuple(getattr(report, k) for k in _REPORT_FIELDS),
        [tuple(getattr(f, k) for k in _FINDING_FIELDS) for f in report.findings],
        rows,
    )
    cacheable = not any(f.code in _UNCACHEABLE for f in report.findings)
    return (b"1" if cacheable else b"0") + zlib.compress(marshal.dumps(payload), 1)


def decode_stage(blob: bytes, name: str, path: str, register: Register | None = None) -> tuple[FileReport, list[Record]]:
    """The inverse of :func:`encode_stage`, naming the workbook ``name``; each record's ref
    is the ``register``'s own text when given (not a copy of it for every return: 35 MB at
    3,000 returns).

    Raises:
        KeyError: a ref the register does not list (a damaged cache entry).
    """
    fields, findings, rows = marshal.loads(zlib.decompress(blob[1:]))
    report = FileReport(workbook=name, path=path, **dict(zip(_REPORT_FIELDS, fields)))
    report.findings = [Finding(name, *f) for f in findings]
    portfolio = report.portfolio
    by_ref = register.by_ref if register is not None else None
    records = []
    for values in rows:
        rec = Record(*values)
        rec.source_file = name
        rec.portfolio = portfolio
        if by_ref is not None:
            rec.ref = by_ref[rec.ref].ref
        records.append(rec)
    return report, records


#: A record's fields in order, and where its bad columns are among them.
_FIELDS_OF = attrgetter(*(f.name for f in dataclass_fields(Record)))
_BAD_AT = [f.name for f in dataclass_fields(Record)].index("bad")


#: The bad columns of a record with none (records decoded share it: add with ``|``).
NO_BAD: frozenset[str] = frozenset()


def _cacheable(blob: bytes) -> bool:
    """False for results that depend on the moment (a time limit, a crash), not the file."""
    return blob[:1] == b"1"


# -- in the worker processes (:mod:`derbyxl.runner`) --

#: The register a worker checks its files against (set once per worker by :func:`_use_register`).
_REGISTER: Register | None = None


def _use_register(register: Register, debug: str | None) -> None:
    global _REGISTER
    _REGISTER = register
    # The caller's --debug, whatever the fork server was started with.
    if debug is None:
        os.environ.pop(DEBUG_ENV, None)
    else:
        os.environ[DEBUG_ENV] = debug


def _check_one(path: Path, name: str, limits: Limits) -> bytes:
    """One file's stage result, encoded: what the cache keeps is also what a worker hands
    back (decoding it is several times quicker than unpickling the objects)."""
    return encode_stage(*check_file(path, name, _REGISTER, limits))


def _import_schemas() -> None:
    importlib.import_module("derbyxl.schemas").prepare()  # pandas and pandera, for later


def _setup_args(register: Register) -> tuple:
    """What :func:`_use_register` gets in each worker: the register and the caller's --debug."""
    return register, os.environ.get(DEBUG_ENV)


def runner_for(register: Register, workers: int | None = None, long_lived: bool = False) -> Runner:
    """Worker processes that check files against ``register``; a ``long_lived`` one is for
    passing to :func:`validate_paths` again and again (close it at the end)."""
    return Runner(setup=_use_register, setup_args=_setup_args(register), workers=workers, long_lived=long_lived)


def _stage_all(tasks, register: Register, limits: Limits, workers: int | None, progress, runner: Runner | None = None) -> Iterator[tuple[int, bytes, tuple]]:
    """Run the per-file stage over ``tasks`` ((index, path, name)) in worker processes (even
    one file, such as an upload to a web portal), decoding each result as it arrives. A file
    that kills its worker gets ``reader-crashed``, one that takes over twice the time limit
    ``time-limit``; the others are read as usual.

    Yields:
        as each file is done: its task index, its encoded result (for the cache) and the
        decoded report and records.
    """
    with nullcontext(runner) if runner is not None else kept(_use_register, _setup_args(register), workers) as runner:
        done = runner.each(_check_one, [(path, name, limits) for _, path, name in tasks], time_limit=limits.max_seconds * 2)
        _import_schemas()  # pandas and pandera, for the checks across files, while the workers read
        for k, result in done:
            index, path, name = tasks[k]
            blob = _failed(name, path, *result) if isinstance(result, Failed) else result
            yield index, blob, decode_stage(blob, name, str(path), register)
            if progress:
                progress(path)


#: How many files' results are added to the cache at once.
_KEEP_AT_ONCE = 500


def _failed(name: str, path: Path, code: str, message: str) -> bytes:
    """The encoded result of a file whose reading failed, with one finding saying how."""
    report = FileReport(workbook=name, path=str(path))
    report.findings.append(finding(code, name, message))
    return encode_stage(report, [])


def validate_file(path: str | Path, register: Register, **kwargs) -> FileReport:
    """Validate one returned workbook; see :func:`validate_paths` for the options."""
    return validate_paths([path], register, **kwargs).files[0]
