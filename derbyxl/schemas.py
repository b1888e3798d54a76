"""The pandera schemas of a return's values, built from the sheet definitions in
:mod:`derbyxl.spec`, and :func:`check_values`, which runs them.

Values of all returns of a kind are validated as concatenated frames (of up to :data:`CHUNK`
records): pandera's fixed cost per call is far larger than its cost per row, and failure cases
carry the frame index, which maps back to workbook, sheet and cell. (Imported only when values
are checked: pandas and pandera take a good part of a second to import.)
"""

from __future__ import annotations

import math

import pandas as pd
import pandera.pandas as pa

from derbyxl import rag
from derbyxl.findings import Finding, finding
from derbyxl.record import Record
from derbyxl.register import Item, Register
from derbyxl.spec import SHEET_BY_KIND, SHEETS, Column, SheetSpec
from derbyxl.values import describe


#: The columns the frame of a column read against the register item's range carries beside it.
_LO, _HI, _PERCENT = "_lo", "_hi", "_percent"


def _checked(spec: SheetSpec) -> tuple[Column, ...]:
    """The inputs the schema checks: every typed input but free text."""
    return tuple(c for c in spec.inputs if c.dtype != "text")


def _item_range_checks(name: str) -> list[pa.Check]:
    """Checks of a number whose range comes from its register item, row by row: a percentage
    typed as a whole number (95 for 95%), and a value outside the item's range."""
    typed_whole = lambda d: d[_PERCENT] & d[name].notna() & (d[name] > 1) & (d[name] <= 100) & (d[_HI] <= 1)  # noqa: E731
    in_range = lambda d: (d[_LO].isna() | (d[name] >= d[_LO])) & (d[_HI].isna() | (d[name] <= d[_HI]))  # noqa: E731
    return [
        pa.Check(lambda d: ~typed_whole(d), name="percent-as-whole"),
        pa.Check(lambda d: d[name].isna() | typed_whole(d) | in_range(d), name="out-of-range"),
    ]


def _schema(spec: SheetSpec) -> pa.DataFrameSchema:
    """One kind's schema, from its sheet definition: a column per checked input, with the
    type, choices and range the column declares; required inputs may not be empty."""
    columns: dict[str, pa.Column] = {}
    checks: list[pa.Check] = []
    for col in _checked(spec):
        if col.dtype == "choice":
            columns[col.name] = pa.Column(str, [pa.Check.isin(list(col.choices))], nullable=not col.required)
            continue
        bounds = [pa.Check.in_range(col.minimum, col.maximum)] if col.minimum is not None and col.maximum is not None else []
        columns[col.name] = pa.Column(float, bounds, nullable=not col.required)
        if col.item_range:
            columns[_LO] = pa.Column(float, nullable=True)
            columns[_HI] = pa.Column(float, nullable=True)
            checks += _item_range_checks(col.name)
    return pa.DataFrameSchema(columns, checks=checks, name=spec.name)


_SCHEMAS: dict[str, pa.DataFrameSchema] = {}


def schema_for(kind: str) -> pa.DataFrameSchema:
    """The pandera schema of one kind's values, built from the sheet definitions."""
    if kind not in _SCHEMAS:
        _SCHEMAS[kind] = _schema(SHEET_BY_KIND[kind])
    return _SCHEMAS[kind]


_PREPARED = False


def prepare() -> None:
    """Build every schema and let pandera load its pandas backend (which it does on first
    use, importing a good many modules), so that this is done before the values arrive.
    Once in a process: each later call (a web portal's every upload) is free."""
    global _PREPARED
    if _PREPARED:
        return
    _PREPARED = True
    for spec in SHEETS:
        try:
            schema_for(spec.kind).validate(_frame(spec, [], {}), lazy=True)
        except pa.errors.SchemaErrors:
            pass  # an empty text column has no type to show; the backend is loaded all the same


def _code_for(spec: SheetSpec, context: str, column: str | None, check: str) -> tuple[str, Column]:
    """The finding code of a failed check, and the input it is about: a check over the whole
    frame (``context`` DataFrameSchema, named by its code) is about the input read against
    its item's range; a column's check gives that column's codes."""
    col = next((c for c in _checked(spec) if c.name == column), None)
    if context == "DataFrameSchema" or col is None:
        return check, next(c for c in _checked(spec) if c.item_range)
    return (col.missing if check == "not_nullable" else col.invalid) or check, col


def _frame(spec: SheetSpec, rows: list[Record], by_ref: dict[str, Item]) -> pd.DataFrame:
    """The frame one kind's schema checks: a row per record, in order, a column per checked
    input (and the item's range beside a value checked against it)."""
    data: dict[str, pd.Series] = {}
    for col in _checked(spec):
        if col.dtype == "choice":
            data[col.name] = pd.Series([r[col.name] for r in rows], dtype="object")
            continue
        data[col.name] = pd.Series([r[col.name] for r in rows], dtype="float64")
        if col.item_range:
            items = [by_ref[r.ref] for r in rows]
            bounds = [item.bounds for item in items]
            data[_LO] = pd.Series([b[0] for b in bounds], dtype="float64")
            data[_HI] = pd.Series([b[1] for b in bounds], dtype="float64")
            data[_PERCENT] = pd.Series([item.unit == "percent" for item in items], dtype=bool)
    return pd.DataFrame(data)


def check_values(records: list[Record], register: Register, quarter: int = 4) -> list[Finding]:
    """Run each kind's pandera schema over the records of all returns, :data:`CHUNK` records
    at a time (a measure's plausible range comes from its item in the register; ``quarter``
    (1-4) is the one whose targets rate a suggested correction, see :func:`_value_message`)."""
    out: list[Finding] = []
    by_kind: dict[str, list[Record]] = {}
    for r in records:
        by_kind.setdefault(r.kind, []).append(r)
    for spec in SHEETS:
        rows = by_kind.get(spec.kind, ())
        for start in range(0, len(rows), CHUNK):
            out.extend(_check_rows(spec, rows[start : start + CHUNK], register.by_ref, quarter))
    return out


#: How many records one schema checks at once: pandera's cost per call is far larger than
#: its cost per row, while the frames it makes grow with the rows. Checking the 282,000
#: measures of 3,000 returns at once took 40 MB beside the records; 50,000 at a time is no
#: slower (the 199,000 records of 1,000 returns: 0.35 s either way).
CHUNK = 50_000


def _check_rows(spec: SheetSpec, rows: list[Record], by_ref: dict[str, Item], quarter: int) -> list[Finding]:
    """The findings of ``spec``'s schema over ``rows`` (records of its kind); the values it
    finds bad are added to each record's bad columns."""
    out: list[Finding] = []
    frame = _frame(spec, rows, by_ref)
    # Values already found bad while reading (not a number...) are not checked again
    # against their item's range.
    ranged = [c.key for c in _checked(spec) if c.item_range]
    skip = {i for i, r in enumerate(rows) if any(k in r.bad for k in ranged)}
    try:
        schema_for(spec.kind).validate(frame, lazy=True)
        return out
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    del frame
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
        code, col = _code_for(spec, case.schema_context, case.column if isinstance(case.column, str) else None, str(case.check))
        key = col.key
        r = rows[idx]
        if idx not in pre_bad:
            pre_bad[idx] = frozenset(r.bad)
        if (idx, key) in reported or key in pre_bad[idx]:
            continue
        reported.add((idx, key))
        r.bad = r.bad | {key}  # a new set: an empty one is shared between records
        out.append(finding(code, r.source_file, _value_message(code, r, col, by_ref[r.ref], quarter), sheet=r.sheet, cell=r.cells.get(key), ref=r.ref))
    return out


#: Statuses that need commentary (:func:`derbyxl.checks.check_cross_field`).
_NEED_WORDS = (rag.RED, rag.AMBER, rag.AMBER_RED)


def _value_message(code: str, r: Record, col: Column, item: Item, quarter: int = 4) -> str:
    """What is wrong with the value of ``col`` in record ``r``, in words."""
    v = r[col.name]
    if code == "percent-as-whole":
        # A fix that raises the next finding says so now: the status the corrected value
        # would have, and the commentary it would need.
        then = rag.measure_status(v / 100, item.target_for(quarter), item.polarity or "higher", item.tolerances)
        after = f" ({item.ref} would then be {then}"
        after += "; add commentary too, as it is needed for " + then + ")" if then in _NEED_WORDS and not r.commentary else ")"
        return f"{v:g} would be {v * 100:g}%; if you meant {v:g}%, type {v:g}%{after if then in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED) else ''}"
    if code == "out-of-range":
        (lo, hi), unit = item.bounds, "percent" if item.unit == "percent" else "number"
        parts = []
        if lo is not None:
            parts.append(f"at least {describe(lo, unit)}")
        if hi is not None:
            parts.append(f"at most {describe(hi, unit)}")
        return f"{describe(v, unit)} read; it should be {' and '.join(parts)}"
    if col.dtype == "choice":
        return (f"{v!r} is not one of " if v else "pick one of ") + ", ".join(col.choices)
    if v is None:
        return f"{col.caption} is empty"
    return f"{col.caption} is {v:g}" if isinstance(v, (int, float)) else f"{col.caption} is {v!r}"
