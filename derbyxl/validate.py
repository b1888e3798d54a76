"""Validate returned workbooks: the library entry points behind ``derbyxl validate``.

    from derbyxl import load_register, validate_file
    report = validate_file("returns/Governance-and-Finance_2024-25-Q4.xlsx", load_register("register.xlsx"))
    report.findings      # Finding records
    report.rows          # the clean values read, with statuses

Every file is handled on its own: a broken file gets findings and the others carry on.
Files are only read, never written.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from derbyxl import checks
from derbyxl.findings import FileReport, Report, finding, sort_key
from derbyxl.guard import DEFAULT_LIMITS, Limits, scan
from derbyxl.periods import Period, PeriodError
from derbyxl.read import RawReturn, ReadError, read_return
from derbyxl.register import Register

#: Set DERBYXL_DEBUG=1 (or pass --debug) to let unexpected exceptions propagate with a traceback.
DEBUG_ENV = "DERBYXL_DEBUG"


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and the files inside folders named (not recursing, skipping Excel's
    ``~$`` lock files and hidden files)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if child.is_file() and not child.name.startswith(("~$", ".")) and child.name.lower() != "readme.md":
                    out.append(child)
        else:
            out.append(p)
    return out


def sha256_of(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


@dataclass
class _Work:
    report: FileReport
    raw: RawReturn | None = None
    error_cells: dict | None = None
    started: float = 0.0


def _display_names(files: list[Path]) -> list[str]:
    """File names, made unique with their folder when two folders hold the same name."""
    counts = Counter(f.name for f in files)
    return [f.name if counts[f.name] == 1 else f"{f.parent.name}/{f.name}" for f in files]


def validate_paths(
    paths: Iterable[str | Path],
    register: Register,
    *,
    period: Period | str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    previous: dict[str, dict] | None = None,
    progress: Callable[[Path], None] | None = None,
) -> Report:
    """Validate every returned workbook in ``paths`` (files or folders).

    Args:
        paths: files and folders.
        register: the year's register.
        period: the quarter expected; by default the latest period any return claims, so a
            stale return among current ones is reported.
        limits: bounds on the work per file.
        previous: last quarter's values and statuses by ref (from history), for plausibility.
        progress: called with each file once it has been read.

    Returns:
        A :class:`Report` with one :class:`FileReport` per file, in path order.
    """
    files = expand_paths(paths)
    expected = Period.parse(period) if period else None
    debug = os.environ.get(DEBUG_ENV) == "1"
    work: list[_Work] = []
    for path, name in zip(files, _display_names(files)):
        w = _Work(FileReport(workbook=name, path=str(path)), started=time.monotonic())
        try:
            _read(w, path, limits, register)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            if debug:
                raise
            w.raw = None
            w.report.findings.append(finding("corrupt-file", name, f"it could not be read ({type(exc).__name__}: {exc})"))
        work.append(w)
        if progress:
            progress(path)
    if expected is None:
        expected = _latest_period(work)
    records: list[dict] = []
    for w in work:
        if w.raw is None:
            continue
        try:
            records.extend(_check_one(w, register, expected, limits))
        except Exception as exc:  # noqa: BLE001
            if debug:
                raise
            w.report.findings.append(finding("corrupt-file", w.report.workbook, f"it could not be checked ({type(exc).__name__}: {exc})"))
            w.raw = None
    by_name = {w.report.workbook: w.report for w in work}
    for f in checks.check_values(records):
        by_name[f.workbook].findings.append(f)
    for f in checks.check_cross_field(records, register, previous):
        by_name[f.workbook].findings.append(f)
    rows_by_wb: dict[str, list[dict]] = {}
    for rec in records:
        rows_by_wb.setdefault(rec["workbook"], []).append(checks.public_record(rec))
    for w in work:
        w.report.rows = rows_by_wb.get(w.report.workbook, [])
        w.report.findings.sort(key=sort_key)
    return Report([w.report for w in work])


def validate_file(path: str | Path, register: Register, **kwargs) -> FileReport:
    """Validate one returned workbook; see :func:`validate_paths` for the options."""
    return validate_paths([path], register, **kwargs).files[0]


def _read(w: _Work, path: Path, limits: Limits, register: Register) -> None:
    rep = w.report
    res = scan(path, limits, workbook=rep.workbook)
    rep.findings.extend(res.findings)
    if not res.ok:
        return
    rep.sha256 = sha256_of(path)
    w.error_cells = res.error_cells
    try:
        w.raw = read_return(path, max_rows=limits.max_rows, known_refs=set(register.by_ref))
    except ReadError as exc:
        rep.findings.append(finding(exc.code, rep.workbook, exc.message))
        w.raw = None


def _latest_period(work: list[_Work]) -> Period | None:
    periods = []
    for w in work:
        if w.raw and w.raw.stamp:
            try:
                periods.append(Period.parse(w.raw.stamp.get("period", "")))
            except PeriodError:
                pass
    return max(periods) if periods else None


def _check_one(w: _Work, register: Register, expected: Period | None, limits: Limits) -> list[dict]:
    rep, raw = w.report, w.raw
    ident, found = checks.check_identity(raw, register, rep.workbook, expected)
    rep.findings.extend(found)
    rep.portfolio, rep.period = ident.portfolio, ident.period
    if not ident.ok:
        return []
    items = register.for_portfolio(ident.portfolio)
    rep.items = len(items)
    rows, found = checks.check_structure(raw, items, register, rep.workbook)
    rep.findings.extend(found)
    sign, rep.signed_by, rep.signed_date = checks.check_sign_off(raw, rep.workbook)
    rep.findings.extend(sign)
    records, found = checks.normalise_rows(rows, items, rep.workbook, w.error_cells or {})
    rep.findings.extend(found)
    if time.monotonic() - w.started > limits.max_seconds:
        rep.findings.append(finding("time-limit", rep.workbook, f"over {limits.max_seconds:g} s"))
        return []
    for rec in records:
        rec["portfolio"] = ident.portfolio
    return records

