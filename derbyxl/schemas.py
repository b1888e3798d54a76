"""The pandera schemas of a return's values, built from the sheet definitions in
:mod:`derbyxl.spec`, and :func:`check_values`, which runs them.

Values of all returns of a kind are validated as one concatenated frame: pandera's fixed cost
per call is far larger than its cost per row, and failure cases carry the frame index, which
maps back to workbook, sheet and cell. (Imported only when values are checked: pandas and
pandera take a good part of a second to import.)
"""

from __future__ import annotations

import math

import pandas as pd
import pandera.pandas as pa

from derbyxl import rag
from derbyxl.findings import Finding, finding
from derbyxl.register import Item, Register
from derbyxl.spec import SHEET_BY_KIND, SHEETS
from derbyxl.values import describe


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


def prepare() -> None:
    """Build every schema and let pandera load its pandas backend (which it does on first
    use, importing a good many modules), so that this is done before the values arrive."""
    for spec in SHEETS:
        try:
            schema_for(spec.kind).validate(_frame(spec.kind, [], {}), lazy=True)
        except pa.errors.SchemaErrors:
            pass  # an empty text column has no type to show; the backend is loaded all the same


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


def _frame(kind: str, rows: list[dict], by_ref: dict[str, Item]) -> pd.DataFrame:
    """The frame one kind's schema checks: a row per record, in order."""
    if kind == "measure":
        items = [by_ref[r["ref"]] for r in rows]
        bounds = [item.bounds for item in items]
        return pd.DataFrame(
            {
                "actual": pd.Series([r.get("actual") for r in rows], dtype="float64"),
                "_lo": pd.Series([b[0] for b in bounds], dtype="float64"),
                "_hi": pd.Series([b[1] for b in bounds], dtype="float64"),
                "_percent": pd.Series([item.unit == "percent" for item in items], dtype=bool),
            }
        )
    if kind == "risk":
        return pd.DataFrame({k: pd.Series([r.get(k) for r in rows], dtype="float64") for k in ("likelihood", "impact")})
    return pd.DataFrame({"status_word": pd.Series([r.get("status_word") for r in rows], dtype="object")})


def check_values(records: list[dict], register: Register, quarter: int = 4) -> list[Finding]:
    """Run each kind's pandera schema once over the records of all returns (a measure's
    plausible range comes from its item in the register; ``quarter`` (1-4) is the one whose
    targets rate a suggested correction, see :func:`_value_message`)."""
    out: list[Finding] = []
    by_ref = register.by_ref
    by_kind: dict[str, list[dict]] = {}
    for r in records:
        by_kind.setdefault(r["kind"], []).append(r)
    for spec in SHEETS:
        rows = by_kind.get(spec.kind)
        if not rows:
            continue
        frame = _frame(spec.kind, rows, by_ref)
        # Values already found bad while reading (not a number...) are not checked again.
        skip = {i for i, r in enumerate(rows) if "actual" in r["bad"]} if spec.kind == "measure" else set()
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
            r["bad"] = r["bad"] | {key}  # a new set: an empty one is shared between records
            out.append(
                finding(code, r["workbook"], _value_message(code, r, key, by_ref[r["ref"]], quarter), sheet=r["sheet"], cell=r["cells"].get(key), ref=r["ref"])
            )
    return out


#: Statuses that need commentary (:func:`derbyxl.checks.check_cross_field`).
_NEED_WORDS = (rag.RED, rag.AMBER, rag.AMBER_RED)


def _value_message(code: str, r: dict, key: str, item: Item, quarter: int = 4) -> str:
    if code == "percent-as-whole":
        v = r["actual"]
        # A fix that raises the next finding says so now: the status the corrected value
        # would have, and the commentary it would need.
        then = rag.measure_status(v / 100, item.target_for(quarter), item.polarity or "higher", item.tolerances)
        after = f" ({item.ref} would then be {then}"
        after += "; add commentary too, as it is needed for " + then + ")" if then in _NEED_WORDS and not r.get("commentary") else ")"
        return f"{v:g} would be {v * 100:g}%; if you meant {v:g}%, type {v:g}%{after if then in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED) else ''}"
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
        v, caption = r.get(key), key.capitalize()
        if v is None:
            return f"{caption} is empty"
        return f"{caption} is {v:g}" if isinstance(v, (int, float)) else f"{caption} is {v!r}"
    return ""
