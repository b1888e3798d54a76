"""The checks a return goes through after it has been read: identity, structure, values
(pandera schemas built from :mod:`derbyxl.spec`), cross-field rules and plausibility.

Values of all returns of a kind are validated as one concatenated frame: pandera's fixed cost
per call is far larger than its cost per row, and failure cases carry the frame index, which
maps back to workbook, sheet and cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from derbyxl import rag
from derbyxl.findings import Finding, finding
from derbyxl.periods import Period, PeriodError
from derbyxl.read import RawReturn, RawSheet, as_date
from derbyxl.register import Item, Register
from derbyxl.spec import FORMAT_VERSION, LONG_TEXT, SHEET_BY_KIND, SHEETS, kinds_present
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
    return finding("wrong-period", report.workbook, f"this is the {period.label} return; download the {expected.label} template")


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


class Cells:
    """Where one row's values are: the A1 reference of each column's cell, by column key,
    worked out when asked (a record per item of a thousand returns need not carry a dict)."""

    __slots__ = ("letters", "row")

    def __init__(self, letters: dict[str, str], row: int):
        self.letters = letters  # column key -> column letters, shared by the sheet's rows
        self.row = row  # 1-based row number

    def get(self, key: str, default=None) -> str | None:
        letters = self.letters.get(key)
        return default if letters is None else f"{letters}{self.row}"

    def as_dict(self) -> dict[str, str]:
        return {key: f"{letters}{self.row}" for key, letters in self.letters.items()}

    def __eq__(self, other):
        return isinstance(other, Cells) and (self.letters, self.row) == (other.letters, other.row)

    def __repr__(self):
        return f"Cells(row={self.row}, {self.letters})"


def normalise_rows(
    found: dict[str, tuple[RawSheet, object]],
    items: list[Item],
    workbook: str,
    error_cells: dict[str, set[str]],
) -> tuple[list[dict], list[Finding]]:
    """Turn raw rows into records of clean values, with a finding for each value that had to be
    read or could not be. Each record keeps the A1 cell of every column for later findings."""
    records: list[dict] = []
    out: list[Finding] = []
    for item in items:
        if item.ref not in found:
            continue
        sheet, row = found[item.ref]
        spec = sheet.spec
        values = row.values
        cells = Cells(sheet.letters, row.index + 1)
        rec = {
            "workbook": workbook,
            "sheet": spec.name,
            "ref": item.ref,
            "kind": item.kind,
            "cells": cells,
            "bad": set(),
            "commentary": _text(values.get("commentary")),
        }

        def bad(key, code, detail):
            rec["bad"].add(key)
            out.append(finding(code, workbook, detail, sheet=spec.name, cell=cells.get(key), ref=item.ref))

        errs = error_cells.get(spec.name)
        if errs:
            for c in spec.inputs:
                if cells.get(c.key) in errs:
                    bad(c.key, "excel-error", f"{c.caption} shows an Excel error value")
        if item.kind == "measure":
            rec["note"] = _text(values.get("note"))
            rec["actual"] = None
            actual = values.get("actual")
            if actual.__class__ is float and math.isfinite(actual) and "actual" not in rec["bad"]:
                rec["actual"] = actual  # a number typed as a number: nothing to read or report
            elif "actual" not in rec["bad"]:
                parsed = parse_value(actual, item.unit or "number")
                if parsed.code == "value-normalised":
                    out.append(finding("value-normalised", workbook, parsed.detail, sheet=spec.name, cell=cells.get("actual"), ref=item.ref))
                elif parsed.code == "no-data-text":
                    out.append(finding("no-data-text", workbook, parsed.detail, sheet=spec.name, cell=cells.get("actual"), ref=item.ref))
                    rec["note"] = rec["note"] or _text(actual)
                elif parsed.code:
                    bad("actual", parsed.code, parsed.detail)
                rec["actual"] = parsed.value
                if parsed.note and not rec["note"]:
                    rec["note"] = parsed.note
        elif item.kind in ("action", "project"):
            raw_status = _text(values.get("status"))
            canon = rag.normalise_action_status(raw_status) if item.kind == "action" else rag.project_status(raw_status)
            rec["status_word"] = canon or raw_status
        else:
            for key in ("likelihood", "impact"):
                v = values.get(key)
                if key in rec["bad"]:
                    rec[key] = None
                    continue
                parsed = parse_value(v, "number")
                if parsed.code not in (None, "value-normalised") or (parsed.value is not None and not float(parsed.value).is_integer()):
                    bad(key, "invalid-risk-rating", f"{spec.column(key).caption} is {v!r}")
                    rec[key] = None
                else:
                    rec[key] = parsed.value
        if rec["commentary"] and len(rec["commentary"]) > LONG_TEXT:
            out.append(finding("text-too-long", workbook, f"{len(rec['commentary']):,} characters", sheet=spec.name, cell=cells.get("commentary"), ref=item.ref))
        records.append(rec)
    return records, out


def _measure_schema() -> pa.DataFrameSchema:
    whole_percent = lambda d: ~(d["_percent"] & d["actual"].notna() & (d["actual"] > 1) & (d["actual"] <= 100) & (d["_hi"] <= 1))  # noqa: E731
    in_range = lambda d: (  # noqa: E731
        d["actual"].isna()
        | (d["_percent"] & (d["actual"] > 1) & (d["actual"] <= 100) & (d["_hi"] <= 1))
        | ((d["_lo"].isna() | (d["actual"] >= d["_lo"])) & (d["_hi"].isna() | (d["actual"] <= d["_hi"])))
    )
    return pa.DataFrameSchema(
        {"actual": pa.Column(float, nullable=True), "_lo": pa.Column(float, nullable=True), "_hi": pa.Column(float, nullable=True)},
        checks=[pa.Check(whole_percent, name="percent-as-whole"), pa.Check(in_range, name="out-of-range")],
        name="Measures",
    )


def _status_schema(spec) -> pa.DataFrameSchema:
    col = spec.column("status")
    return pa.DataFrameSchema(
        {"status_word": pa.Column(str, [pa.Check.isin(list(col.choices))], nullable=False)},
        name=spec.name,
    )


def _risk_schema() -> pa.DataFrameSchema:
    rating = [pa.Check.in_range(rag.RISK_MIN, rag.RISK_MAX)]
    return pa.DataFrameSchema(
        {"likelihood": pa.Column(float, rating, nullable=False), "impact": pa.Column(float, rating, nullable=False)},
        name="Risks",
    )


_SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def schema_for(kind: str) -> pa.DataFrameSchema:
    """The pandera schema of one kind's values, built from the sheet definitions."""
    if kind not in _SCHEMAS:
        spec = SHEET_BY_KIND[kind]
        _SCHEMAS[kind] = {"measure": _measure_schema, "risk": _risk_schema}.get(kind, lambda: _status_schema(spec))()
    return _SCHEMAS[kind]


def _code_for(kind: str, column: str, check: str) -> str:
    if check == "not_nullable":
        return "missing-status" if column == "status_word" else "missing-risk-rating"
    if check.startswith("isin"):
        return "invalid-status"
    if check.startswith("in_range") or check.startswith("greater") or check.startswith("less"):
        return "invalid-risk-rating"
    if check.startswith("dtype"):
        return "not-a-number" if kind == "measure" else "invalid-status"
    return check


def check_values(records: list[dict], register: Register) -> list[Finding]:
    """Run each kind's pandera schema once over the records of all returns (a measure's
    plausible range comes from its item in the register)."""
    out: list[Finding] = []
    by_ref = register.by_ref
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    for spec in SHEETS:
        rows = by_kind.get(spec.kind)
        if not rows:
            continue
        if spec.kind == "measure":
            columns: dict[str, list] = {"actual": [], "_lo": [], "_hi": [], "_percent": []}
            actual, low, high, percent = columns.values()
            for r in rows:
                item = by_ref[r["ref"]]
                lo, hi = item.bounds
                actual.append(r.get("actual"))
                low.append(lo)
                high.append(hi)
                percent.append(item.unit == "percent")
            frame = pd.DataFrame({k: pd.Series(v, dtype=bool if k == "_percent" else "float64") for k, v in columns.items()})
            skip = {i for i, r in enumerate(rows) if "actual" in r["bad"]}
        elif spec.kind == "risk":
            frame = pd.DataFrame(
                {k: pd.Series([r.get(k) for r in rows], dtype="float64") for k in ("likelihood", "impact")}
            )
            skip = set()
        else:
            frame = pd.DataFrame({"status_word": pd.Series([r.get("status_word") for r in rows], dtype="object")})
            skip = set()
        try:
            schema_for(spec.kind).validate(frame, lazy=True)
            continue
        except pa.errors.SchemaErrors as exc:
            cases = exc.failure_cases
        reported: set[tuple[int, str]] = set()
        # Values already reported while reading (not a number, an Excel error...) are not
        # reported again as missing or out of range: what was bad before this schema ran.
        pre_bad: dict[int, frozenset] = {}
        for case in cases.itertuples(index=False):
            idx = case.index
            if idx is None or (isinstance(idx, float) and math.isnan(idx)):
                continue
            idx = int(idx)
            if idx in skip:
                continue
            column = case.column if isinstance(case.column, str) else "actual"
            check = str(case.check)
            code = _code_for(spec.kind, column, check)
            if code == "out-of-range" and column in ("_lo", "_hi", "_percent"):
                column = "actual"
            if column.startswith("_"):
                column = "actual"
            key = "status" if column == "status_word" else column
            r = rows[idx]
            if idx not in pre_bad:
                pre_bad[idx] = frozenset(r["bad"])
            if (idx, key) in reported or key in pre_bad[idx]:
                continue
            reported.add((idx, key))
            r["bad"].add(key)
            out.append(
                finding(code, r["workbook"], _value_message(code, r, key, by_ref[r["ref"]]), sheet=r["sheet"], cell=r["cells"].get(key), ref=r["ref"])
            )
    return out


def _value_message(code: str, r: dict, key: str, item: Item) -> str:
    if code == "percent-as-whole":
        v = r["actual"]
        return f"{v:g} would be {v * 100:g}%; if you meant {v:g}%, type {v:g}%"
    if code == "out-of-range":
        (lo, hi), v = item.bounds, r.get("actual")
        unit = "percent" if item.unit == "percent" else "number"
        parts = []
        if lo is not None:
            parts.append(f"at least {describe(lo, unit)}")
        if hi is not None:
            parts.append(f"at most {describe(hi, unit)}")
        return f"{describe(v, unit)} read; it should be {' and '.join(parts)}"
    if code in ("invalid-status", "missing-status"):
        got = r.get("status_word")
        allowed = SHEET_BY_KIND[r["kind"]].column("status").choices
        return (f"{got!r} is not one of " if got else "pick one of ") + ", ".join(allowed)
    if code in ("invalid-risk-rating", "missing-risk-rating"):
        return f"{key} is {r.get(key)!r}" if r.get(key) is not None else f"{key} is empty"
    return ""


def compute_status(rec: dict, item: Item) -> None:
    """Add the status (and risk score) to a record whose values are clean."""
    bad = rec["bad"]
    if item.kind == "measure":
        rec["status"] = None if "actual" in bad else rag.measure_status(rec.get("actual"), item.target, item.polarity or "higher", item.tolerances)
    elif item.kind == "action":
        rec["status"] = None if "status" in bad else rag.action_status(rec.get("status_word"))
    elif item.kind == "project":
        rec["status"] = None if "status" in bad else rag.project_status(rec.get("status_word"))
    else:
        li, im = rec.get("likelihood"), rec.get("impact")
        # Out-of-range ratings are reported by the risk schema; until then they score nothing.
        ok = not ({"likelihood", "impact"} & bad) and all(v is not None and rag.RISK_MIN <= v <= rag.RISK_MAX and float(v).is_integer() for v in (li, im))
        rec["score"] = rag.risk_score(int(li), int(im)) if ok else None
        rec["status"] = rag.risk_status(rec["score"])


def check_cross_field(records: list[dict], register: Register, previous: dict[str, dict] | None = None) -> list[Finding]:
    """Commentary where it is needed, actuals explained, and plausibility warnings.

    Records carry their status from :func:`compute_status` (worked out per file, then again
    for any value :func:`check_values` found bad); one without gets it here."""
    out: list[Finding] = []
    previous = previous or {}
    by_ref = register.by_ref
    needs_words = (rag.RED, rag.AMBER, rag.AMBER_RED)
    for rec in records:
        ref = rec["ref"]
        item = by_ref[ref]
        if "status" not in rec:
            compute_status(rec, item)
        status = rec.get("status")
        needs, why = status in needs_words, status
        # A measure's actual, when it was read cleanly (None: left empty).
        actual = rec.get("actual") if item.kind == "measure" and "actual" not in rec["bad"] else _UNREAD
        if actual is None:
            if not rec.get("note"):
                out.append(finding("missing-actual", rec["workbook"], "no actual and no Note saying why", sheet=rec["sheet"], cell=rec["cells"].get("actual"), ref=ref))
                continue
            needs, why = True, "no data"
        if needs and not rec.get("commentary"):
            out.append(
                finding(
                    "missing-commentary",
                    rec["workbook"],
                    f"{ref} is {why}; say what is happening and what is being done",
                    sheet=rec["sheet"],
                    cell=rec["cells"].get("commentary"),
                    ref=ref,
                )
            )
        if actual is not None and actual is not _UNREAD and actual != 0:
            before = previous[ref].get("actual", item.previous_actual) if ref in previous else item.previous_actual
            if before not in (None, 0):
                ratio = abs(actual / before)
                if ratio > CHANGE_FACTOR or ratio < 1 / CHANGE_FACTOR or (actual < 0) != (before < 0):
                    unit = item.unit or "number"
                    out.append(
                        finding(
                            "large-change",
                            rec["workbook"],
                            f"{describe(actual, unit)} against {describe(before, unit)} last time; check the value and its unit",
                            sheet=rec["sheet"],
                            cell=rec["cells"].get("actual"),
                            ref=ref,
                        )
                    )
        if item.kind == "action" and status in (rag.AMBER, rag.RED) and previous.get(ref, {}).get("status") == rag.BLUE:
            out.append(
                finding(
                    "completed-now-slipping",
                    rec["workbook"],
                    f"{ref} was Completed last quarter and is now {rec.get('status_word')}",
                    sheet=rec["sheet"],
                    cell=rec["cells"].get("status"),
                    ref=ref,
                )
            )
    return out


#: Stands for a measure's actual that was not read cleanly (so no plausibility check applies).
_UNREAD = object()


def check_sign_off(raw: RawReturn, workbook: str) -> tuple[list[Finding], str | None, str | None]:
    by = raw.sign_off.get("completed_by")
    date = as_date(raw.sign_off.get("signed_date"))
    if not by or date is None:
        missing = [n for n, v in (("Completed by", by), ("Date", date)) if not v]
        return [finding("missing-sign-off", workbook, f"{' and '.join(missing)} empty on the Cover sheet", sheet="Cover")], _text(by), date.isoformat() if date else None
    return [], _text(by), date.isoformat()


def make_public(rec: dict) -> dict:
    """Turn a record, in place, into what the consolidation and the web portal see: the set
    of columns found bad while checking is removed (the findings say which)."""
    rec.pop("bad", None)
    return rec

