"""Carry an officer's answers from an older return into the current template.

A lead who sends back last quarter's template, or one made from last year's register, has
typed real answers into the wrong workbook. Rather than retype them, the performance team
runs ``derbyxl migrate``: the current template for the return's portfolio is written with
every answer carried over by Ref, and what could not be carried is listed (items no longer
in the register, items whose unit or kind changed, items new this time).

    from derbyxl.migrate import migrate
    m = migrate("returns/Place_2024-25-Q4.xlsx", register, "2025-26-Q1", "returns/Place_2025-26-Q1.xlsx")
    m.carried, m.left    # refs carried; (ref, why) not carried

The old workbook is untrusted input like any return: it is pre-scanned and read in a worker
process (:mod:`derbyxl.runner`), and it is only read. The sign-off is not carried: the lead signs the new return.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from derbyxl.guard import DEFAULT_LIMITS, Limits, scan
from derbyxl.periods import Period
from derbyxl.read import ReadError, read_return
from derbyxl.runner import Failed, Runner
from derbyxl.register import Register, cell_text
from derbyxl.spec import SHEETS
from derbyxl.values import normalise_unit
from derbyxl.xlsx_util import atomic_path, ensure_folder


class MigrateError(Exception):
    """The old workbook cannot be migrated (unreadable, not a derbyxl return, an unknown
    portfolio); the message says why and what to do."""


@dataclass
class Migration:
    """What :func:`migrate` did.

    Attributes:
        path: the new return written.
        portfolio: its portfolio.
        source_period: the period the old workbook was for (its stamp).
        carried: the refs whose answers were carried over.
        left: (ref, why) for each item whose answers were not carried, or that is new.
    """

    path: Path
    portfolio: str
    source_period: str | None
    carried: list[str] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)


def migrate(
    old: str | Path,
    register: Register,
    period: Period | str,
    out: str | Path,
    *,
    previous: Mapping[str, tuple[str, float]] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Migration:
    """Write the current template for ``old``'s portfolio to ``out`` with its answers carried.

    Args:
        old: a filled return from an older template or quarter.
        register: the register the new template is made from.
        period: the quarter of the new template.
        out: where to write the new return (an .xlsx; never the same file as ``old``).
        previous: the history's latest values, as for :func:`derbyxl.template.write_template`.
        limits: the pre-scan's bounds for the old workbook.

    Returns:
        A :class:`Migration`.

    Raises:
        MigrateError: when the old workbook cannot be read or matched to a portfolio.
    """
    from derbyxl.template import write_template

    old, out, period = Path(old), Path(out), Period.parse(period)
    if out.exists() and out.resolve() == old.resolve():
        raise MigrateError(f"{out} is the old return itself; write the new one to another name (returns are never changed)")
    # Pre-scanned and read in a worker process, as every untrusted workbook is (derbyxl.runner).
    with Runner(workers=1) as runner:
        (read,) = runner.run(_read_answers, [(old, limits)], time_limit=limits.max_seconds * 2)
    if isinstance(read, Failed):
        raise MigrateError(f"{old.name} cannot be read: {read.message}")
    problem, stamp, found = read
    if problem:
        raise MigrateError(f"{old.name} cannot be read: {problem}")
    named = stamp.get("portfolio")
    if stamp.get("generator") != "derbyxl" or not named:
        raise MigrateError(f"{old.name} is not a derbyxl return (it has no identity stamp), so its portfolio is unknown")
    portfolio = register.find_portfolio(named)
    if portfolio is None:
        raise MigrateError(f"{old.name} is for {named!r}, which is not a portfolio of this register ({', '.join(register.portfolios)})")
    items = {i.ref: i for i in register.for_portfolio(portfolio)}
    m = Migration(out, portfolio, stamp.get("period"))
    answers: dict[str, dict] = {}
    for ref, (kind, values) in found.items():
        item = items.get(ref)
        if item is None:
            m.left.append((ref, "no longer in the register for this portfolio; its answers were not carried"))
            continue
        if item.kind != kind:
            m.left.append((ref, f"is now a {item.kind}, not a {kind}; answer it afresh"))
            continue
        spec = next(s for s in SHEETS if s.kind == kind)
        typed = {c.key: values.get(c.key) for c in spec.inputs if values.get(c.key) not in (None, "")}
        if kind == "measure" and "actual" in typed:
            was = normalise_unit(cell_text(values.get("unit"))) if values.get("unit") else None
            if was is not None and was != item.unit:
                typed.pop("actual")
                m.left.append((ref, f"its unit changed from {was} to {item.unit}; the actual was not carried, type it in {item.unit}"))
        if typed:
            answers[ref] = {k: _as_typed(v) for k, v in typed.items()}
            m.carried.append(ref)
    for ref in items:
        if ref not in found:
            m.left.append((ref, "is new in the register; answer it"))
    with tempfile.TemporaryDirectory(dir=ensure_folder(out.parent)) as tmp:
        info = write_template(register, portfolio, period, tmp, previous=previous, answers=answers)
        with atomic_path(out) as part:
            Path(info.path).replace(part)
    return m


def _read_answers(old: Path, limits: Limits) -> tuple[str | None, dict, dict[str, tuple[str, dict]]]:
    """In a worker: pre-scan and read an old return. Returns what is wrong with it (None when
    it was read), its identity stamp, and each row's kind and values by ref (the first row of
    a ref)."""
    res = scan(old, limits, workbook=old.name)
    if not res.ok:
        return "; ".join(f.message for f in res.findings if f.severity == "error"), {}, {}
    try:
        raw = read_return(old, max_rows=limits.max_rows)
    except ReadError as exc:
        return exc.message, {}, {}
    found: dict[str, tuple[str, dict]] = {}
    for spec in SHEETS:
        sheet = raw.sheets.get(spec.name)
        if sheet is None:
            continue
        for row in sheet.rows:
            if row.ref and row.ref not in found:
                found[row.ref] = (spec.kind, dict(row.values))
    return None, dict(raw.stamp or {}), found


def _as_typed(value):
    """A value as the template writes it: numbers as numbers, anything else as text (never a
    formula: the template writes text with write_string)."""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, (int, float)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
