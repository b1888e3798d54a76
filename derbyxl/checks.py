"""The checks a return goes through after it has been read: identity, structure, the values
of each row read and their statuses, cross-field rules and plausibility. The pandera schemas,
which check the values of all returns at once, are in :mod:`derbyxl.schemas`.

This module does not import pandas: the per-file checks run in worker processes that do not
need it, and a command can start them before pandas is loaded.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from derbyxl import rag
from derbyxl.baseline import baseline, comparable
from derbyxl.findings import CATALOGUE, Finding, finding, returns_by_portfolio
from derbyxl.periods import Period, PeriodError
from derbyxl.read import RawReturn, RawSheet, as_date
from derbyxl.record import Record
from derbyxl.register import Item, Register
from derbyxl.spec import COVER_PERIOD_CELL, COVER_SHEET, FORMAT_VERSION, LONG_TEXT, SIGN_OFF, kinds_present
from derbyxl.values import describe, parse_value

#: A measure moving by more than this factor from its previous actual draws a warning.
CHANGE_FACTOR = 3.0


@dataclass
class Identity:
    portfolio: str | None
    period: str | None
    ok: bool


def check_identity(raw: RawReturn, register: Register, workbook: str) -> tuple[Identity, list[Finding]]:
    """Is this a derbyxl return, for which portfolio and period, from which template version?
    (Whether the period is the one expected depends on the other returns: :func:`check_period`.)"""
    out: list[Finding] = []
    stamp = raw.stamp
    if not stamp or stamp.get("generator") != "derbyxl":
        out.append(finding("not-a-return", workbook, "it has no derbyxl identity stamp (was it copied into a new workbook?)"))
        return Identity(None, None, False), out
    portfolio = stamp.get("portfolio") or None
    period_text = stamp.get("period") or ""
    try:
        version = int(float(stamp.get("format_version", "0")))
    except ValueError:
        version = 0
    if version < FORMAT_VERSION:
        out.append(finding("outdated-template", workbook, f"it is template format {version}; the current format is {FORMAT_VERSION}"))
        return Identity(portfolio, period_text, False), out
    try:
        period = Period.parse(period_text)
    except PeriodError:
        out.append(finding("not-a-return", workbook, f"its stamp names no valid period ({period_text!r})"))
        return Identity(portfolio, None, False), out
    found = register.find_portfolio(portfolio or "")
    if found is None:
        out.append(finding("unknown-portfolio", workbook, f"{portfolio!r} is not a portfolio of the register"))
        return Identity(portfolio, period.key, False), out
    # A template made from this very register file is current; otherwise its portfolio's
    # items are compared (hashing them is the costly part, so only when needed).
    same_register = stamp.get("register_fingerprint") == register.fingerprint
    if stamp.get("portfolio_fingerprint") and not same_register and stamp["portfolio_fingerprint"] != register.portfolio_fingerprint(found):
        out.append(finding("register-changed", workbook, "the items, targets or units of this portfolio changed since the template was made"))
    return Identity(found, period.key, True), out


#: Findings that a return made from another register than the one loaded gets by the dozen.
_FROM_ANOTHER_REGISTER = ("unknown-portfolio", "register-changed", "missing-sheet", "missing-item", "unknown-item", "missing-column")


def check_register_source(reports, register: Register) -> str | None:
    """When most stamped returns were made from another register than ``register`` and that
    shows (unknown portfolios, changed items, missing or unknown rows), say so once: each such
    file's findings become one ``other-register`` error, and the message returned explains it.
    A register edited since the templates were made (its fingerprint changed, the portfolios'
    items did not) raises nothing here.

    Returns:
        the message for the whole run, or None.
    """
    stamped = [r for r in reports if r.register_fingerprint]
    foreign = [r for r in stamped if r.register_fingerprint != register.fingerprint and any(f.code in _FROM_ANOTHER_REGISTER and f.severity == "error" for f in r.findings)]
    if not foreign or len(foreign) * 2 <= len(stamped):
        return None
    made_from = Counter(r.register_fingerprint for r in foreign).most_common(1)[0][0]
    loaded = "the bundled sample register" if register.is_sample else f"register {register.fingerprint} ({register.source})"
    for r in foreign:
        kept = [f for f in r.findings if CATALOGUE[f.code].layer == "file"]
        r.findings = kept + [finding("other-register", r.workbook, f"its template was made from register {r.register_fingerprint}, but {loaded} was loaded")]
    return (
        f"{len(foreign)} of {len(stamped)} returns were made from register {made_from}, but you loaded {loaded}: "
        "pass --register with the register the templates came from"
    )


def check_period(report, expected: Period | None) -> Finding | None:
    """The wrong-period finding when a return (a :class:`FileReport` read so far) is for
    another quarter than the one expected."""
    if expected is None or not report.period:
        return None
    try:
        period = Period.parse(report.period)
    except PeriodError:
        return None
    if period == expected:
        return None
    return finding("wrong-period", report.workbook, f"this is the {period.label} return; use the {expected.label} template you were sent", sheet=COVER_SHEET, cell=COVER_PERIOD_CELL)


def check_duplicate_returns(reports, expected: Period | None) -> list[Finding]:
    """A duplicate-return warning on each of two or more files (:class:`FileReport`) that
    return the same portfolio for the quarter expected: consolidate uses only one of them."""
    if expected is None:
        return []
    out = []
    for portfolio, group in returns_by_portfolio(reports, expected.key).items():
        for report in group if len(group) > 1 else ():
            others = ", ".join(o.workbook for o in group if o is not report)
            out.append(finding("duplicate-return", report.workbook, f"{others} ({portfolio}, {expected.label})"))
    return out


def check_structure(raw: RawReturn, items: list[Item], register: Register, workbook: str) -> tuple[dict[str, tuple[RawSheet, object]], list[Finding]]:
    """Sheets, captions and rows: every item present once, nothing added.

    Returns:
        the rows found, by ref, and the findings.
    """
    out: list[Finding] = []
    found: dict[str, tuple[RawSheet, object]] = {}
    by_kind: dict[str, list[Item]] = {}
    for item in items:
        by_kind.setdefault(item.kind, []).append(item)
    for spec in kinds_present(items):
        sheet = raw.sheets.get(spec.name)
        expected = by_kind[spec.kind]
        if sheet is None:
            others = [n for n in raw.sheet_names if not n.startswith("_")]
            out.append(finding("missing-sheet", workbook, f"no sheet named '{spec.name}' (sheets found: {', '.join(others)})", sheet=spec.name))
            for item in expected:
                out.append(finding("missing-item", workbook, f"{item.ref} could not be read because sheet '{spec.name}' is missing", sheet=spec.name, ref=item.ref, severity="error"))
            continue
        if sheet.hidden:
            out.append(finding("hidden-sheet", workbook, f"sheet '{spec.name}' is hidden; it was read all the same", sheet=spec.name))
        if sheet.missing_columns:
            out.append(
                finding(
                    "missing-column",
                    workbook,
                    f"header row has no {', '.join(repr(c) for c in sheet.missing_columns)}",
                    sheet=spec.name,
                    cell=f"A{(sheet.header_index or 0) + 1}",
                )
            )
            if any(c.caption in sheet.missing_columns for c in spec.columns if c.key == "ref"):
                continue
        wanted = {i.ref: i for i in expected}
        seen: dict[str, str] = {}
        for row in sheet.rows:
            ref = row.ref
            cell = sheet.cell(row, "ref")
            if not ref:
                out.append(finding("unknown-item", workbook, f"row {row.index + 1} has answers but no Ref", sheet=spec.name, cell=cell))
                continue
            if ref not in wanted:
                other = register.by_ref.get(ref)
                why = f"{ref!r} belongs to {other.portfolio}" if other and other.portfolio != items[0].portfolio else f"{ref!r} is not in the register for this portfolio"
                if other and other.portfolio == items[0].portfolio:
                    why = f"{ref!r} is a {other.kind}, not a {spec.kind}"
                out.append(finding("unknown-item", workbook, why, sheet=spec.name, cell=cell, ref=ref))
                continue
            if ref in seen:
                out.append(finding("duplicate-item", workbook, f"{ref} is also at {seen[ref]}", sheet=spec.name, cell=cell, ref=ref))
                continue
            seen[ref] = cell
            found[ref] = (sheet, row)
        for ref, item in wanted.items():
            if ref not in seen:
                out.append(finding("missing-item", workbook, f"{ref} ({item.description[:60]}) is not on the sheet", sheet=spec.name, ref=ref))
        for row in sheet.stray:
            out.append(finding("stray-row", workbook, f"row {row.index + 1} is below the table and was not read", sheet=spec.name, cell=f"A{row.index + 1}"))
        _merged(sheet, spec, workbook, out)
    return found, out


def _merged(sheet: RawSheet, spec, workbook: str, out: list[Finding]):
    if not sheet.merged or sheet.header_index is None:
        return
    input_cols = {sheet.columns[c.key] for c in spec.inputs if c.key in sheet.columns}
    for (r1, c1), (r2, c2) in sheet.merged:
        if r2 <= sheet.header_index:
            continue
        if any(c1 <= c <= c2 for c in input_cols) or any(c1 <= sheet.columns.get(k, -1) <= c2 for k in ("ref",)):
            from xlsxwriter.utility import xl_rowcol_to_cell

            rng = f"{xl_rowcol_to_cell(r1, c1)}:{xl_rowcol_to_cell(r2, c2)}"
            out.append(finding("merged-cells", workbook, f"cells {rng} are merged", sheet=spec.name, cell=xl_rowcol_to_cell(r1, c1)))


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def normalise_rows(
    found: dict[str, tuple[RawSheet, object]],
    items: list[Item],
    workbook: str,
    error_cells: dict[str, set[str]],
) -> tuple[list[Record], list[Finding]]:
    """Turn raw rows into records of clean values, with a finding for each value that had to be
    read or could not be. Each record keeps where its row is (:class:`Cells`) for later findings."""
    records: list[Record] = []
    out: list[Finding] = []
    for item in items:
        if item.ref not in found:
            continue
        sheet, row = found[item.ref]
        spec = sheet.spec
        values = row.values
        rec = Record(ref=item.ref, kind=item.kind, commentary=_text(values.get("commentary")), sheet=spec.name, row_number=row.index + 1, letters=sheet.letters, bad=set())
        cells = rec.cells

        def bad(key, code, detail):
            rec.bad.add(key)
            out.append(finding(code, workbook, detail, sheet=spec.name, cell=cells.get(key), ref=item.ref))

        errs = error_cells.get(spec.name)
        if errs:
            for c in spec.inputs:
                if cells.get(c.key) in errs:
                    bad(c.key, "excel-error", f"{c.caption} shows an Excel error value")
        if item.kind == "measure":
            rec.note = _text(values.get("note"))
            actual = values.get("actual")
            if actual.__class__ is float and math.isfinite(actual) and "actual" not in rec.bad:
                rec.actual = actual  # a number typed as a number: nothing to read or report
            elif "actual" not in rec.bad:
                parsed = parse_value(actual, item.unit or "number")
                if parsed.code == "value-normalised":
                    out.append(finding("value-normalised", workbook, parsed.detail, sheet=spec.name, cell=cells.get("actual"), ref=item.ref))
                elif parsed.code == "no-data-text":
                    out.append(finding("no-data-text", workbook, parsed.detail, sheet=spec.name, cell=cells.get("actual"), ref=item.ref))
                    rec.note = rec.note or _text(actual)
                elif parsed.code:
                    bad("actual", parsed.code, parsed.detail)
                rec.actual = parsed.value
                if parsed.note and not rec.note:
                    rec.note = parsed.note
        elif item.kind in ("action", "project"):
            raw_status = _text(values.get("status"))
            canon = rag.normalise_action_status(raw_status) if item.kind == "action" else rag.project_status(raw_status)
            rec.status_word = canon or raw_status
        else:
            for key in ("likelihood", "impact"):
                v = values.get(key)
                if key in rec.bad:
                    continue
                parsed = parse_value(v, "number")
                if parsed.code not in (None, "value-normalised") or (parsed.value is not None and not float(parsed.value).is_integer()):
                    bad(key, "invalid-risk-rating", f"{spec.column(key).caption} is {v!r}")
                else:
                    rec[key] = parsed.value
        if rec.commentary and len(rec.commentary) > LONG_TEXT:
            out.append(finding("text-too-long", workbook, f"{len(rec.commentary):,} characters", sheet=spec.name, cell=cells.get("commentary"), ref=item.ref))
        records.append(rec)
    return records, out


def compute_status(rec: Record, item: Item, quarter: int) -> None:
    """Add the status (and risk score) to a record whose values are clean; a measure is rated
    against its target for ``quarter`` (1-4: :meth:`derbyxl.register.Item.target_for`)."""
    bad = rec.bad
    if item.kind == "measure":
        rec.status = None if "actual" in bad else rag.measure_status(rec.actual, item.target_for(quarter), item.polarity or "higher", item.tolerances)
    elif item.kind == "action":
        rec.status = None if "status" in bad else rag.action_status(rec.status_word)
    elif item.kind == "project":
        rec.status = None if "status" in bad else rag.project_status(rec.status_word)
    else:
        li, im = rec.likelihood, rec.impact
        # Out-of-range ratings are reported by the risk schema; until then they score nothing.
        ok = not ({"likelihood", "impact"} & bad) and all(v is not None and rag.RISK_MIN <= v <= rag.RISK_MAX and float(v).is_integer() for v in (li, im))
        rec.score = rag.risk_score(int(li), int(im)) if ok else None
        rec.status = rag.risk_status(rec.score)


def check_cross_field(
    records: list[Record],
    register: Register,
    period: Period,
    latest: dict[str, tuple[str, float]] | None = None,
    previous: dict[str, dict] | None = None,
) -> list[Finding]:
    """Commentary where it is needed, actuals explained, and plausibility warnings.

    Args:
        records: the records of the returns for ``period``.
        register: the year's register.
        period: the quarter checked.
        latest: the history's latest actual before ``period`` by ref (period key, value);
            with the register, it gives each measure's baseline (:mod:`derbyxl.baseline`).
        previous: the history's values of the quarter before, by ref (for statuses).

    Records carry their status from :func:`compute_status` (worked out per file, then again
    for any value :func:`derbyxl.schemas.check_values` found bad)."""
    out: list[Finding] = []
    previous = previous or {}
    latest = latest or {}
    by_ref = register.by_ref
    needs_words = (rag.RED, rag.AMBER, rag.AMBER_RED)
    for rec in records:
        ref = rec.ref
        item = by_ref[ref]
        status = rec.status
        needs, why = status in needs_words, status
        # A measure's actual, when it was read cleanly (None: left empty).
        actual = rec.actual if item.kind == "measure" and "actual" not in rec.bad else _UNREAD
        if actual is None:
            if not rec.note:
                _flag(out, rec, "missing-actual", "actual", "no actual and no Note saying why")
                continue
            needs, why = True, "no data"
        if needs and not rec.commentary:
            _flag(out, rec, "missing-commentary", "commentary", f"{ref} is {why}; say what is happening and what is being done")
        if actual is not None and actual is not _UNREAD and actual != 0:
            earlier = baseline(item, period, latest)
            before = comparable(item, earlier, period) if earlier is not None else None
            if before not in (None, 0):
                ratio = abs(actual / before)
                if ratio > CHANGE_FACTOR or ratio < 1 / CHANGE_FACTOR or (actual < 0) != (before < 0):
                    unit = item.unit or "number"
                    when = f" in {Period.parse(earlier.period).label}" if earlier.period else " last time"
                    scaled = f" ({describe(before, unit)} on this quarter's target profile)" if before != earlier.value else ""
                    _flag(out, rec, "large-change", "actual", f"{describe(actual, unit)} against {describe(earlier.value, unit)}{when}{scaled}; check the value and its unit")
        if item.kind == "action" and status in (rag.AMBER, rag.RED) and previous.get(ref, {}).get("status") == rag.BLUE:
            _flag(out, rec, "completed-now-slipping", "status", f"{ref} was Completed last quarter and is now {rec.status_word}")
    return out


def _flag(out: list[Finding], rec: Record, code: str, key: str, message: str) -> None:
    """A finding on one record's cell of column ``key``."""
    out.append(finding(code, rec.source_file, message, sheet=rec.sheet, cell=rec.cells.get(key), ref=rec.ref))


#: Stands for a measure's actual that was not read cleanly (so no plausibility check applies).
_UNREAD = object()


def check_sign_off(raw: RawReturn, workbook: str) -> tuple[list[Finding], str | None, str | None]:
    by = raw.sign_off.get("completed_by")
    date = as_date(raw.sign_off.get("signed_date"))
    if not by or date is None:
        empty = [(s.caption, s.cell) for s, v in zip(SIGN_OFF[:2], (by, date)) if not v]
        found = finding("missing-sign-off", workbook, f"{' and '.join(c for c, _ in empty)} empty on the Cover sheet", sheet=COVER_SHEET, cell=empty[0][1])
        return [found], _text(by), date.isoformat() if date else None
    return [], _text(by), date.isoformat()
