"""Values as officers really type them, and the units a register may give a measure.

Excel quirks worth knowing here:
- a percent-formatted cell stores a fraction: a cell showing 4.7% holds 0.047;
- a number typed into a percent cell after the cell was formatted is divided by 100 by Excel,
  but a number pasted or typed by a script is not, so 74 can arrive meaning 7400%;
- a date-formatted cell holds a serial number, which readers hand back as a date.

:func:`parse_value` turns one raw cell value into a number when its meaning is unambiguous and
says what it read; when the meaning is unclear it says why instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

UNITS = ("percent", "number", "money", "rate", "days", "kg", "km", "score", "hours", "weeks", "minutes")
_UNIT_ALIASES = {
    "%": "percent",
    "pct": "percent",
    "percentage": "percent",
    "count": "number",
    "no": "number",
    "no.": "number",
    "num": "number",
    "£": "money",
    "gbp": "money",
    "pounds": "money",
    "day": "days",
    "working days": "days",
    "hour": "hours",
    "hrs": "hours",
    "hr": "hours",
    "week": "weeks",
    "wks": "weeks",
    "minute": "minutes",
    "mins": "minutes",
    "min": "minutes",
    "£m": "money",
    "£k": "money",
    "£000s": "money",
    "kilograms": "kg",
    "kilometres": "km",
    "kilometers": "km",
    "ratio": "rate",
    "per 10,000": "rate",
    "per 100,000": "rate",
}

#: Excel number formats by unit, used by every workbook derbyxl writes.
NUMBER_FORMATS = {
    "percent": "0.0%",
    "number": "#,##0.##",
    "money": "£#,##0",
    "rate": "#,##0.0#",
    "days": "#,##0.0#",
    "kg": '#,##0.0# "kg"',
    "km": '#,##0.0# "km"',
    "score": "0.0#",
    "hours": '#,##0.0# "hrs"',
    "weeks": '#,##0.0# "wks"',
    "minutes": '#,##0.0# "mins"',
}

#: Words that mean "no value this quarter" when typed where a number belongs.
NO_DATA_WORDS = {
    "n/a",
    "na",
    "n.a.",
    "-",
    "tbc",
    "no data",
    "not available",
    "data not available",
    "data not yet available",
    "not yet available",
    "awaiting data",
}

#: Excel error values as they appear in a cell.
EXCEL_ERRORS = {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}

_SUFFIX_BY_UNIT = {
    "kg": ("kg", "kgs", "kilograms"),
    "km": ("km", "kms", "kilometres", "kilometers"),
    "days": ("days", "day", "working days"),
    "hours": ("hours", "hour", "hrs", "hr", "h"),
    "weeks": ("weeks", "week", "wks", "wk"),
    "minutes": ("minutes", "minute", "mins", "min"),
}
#: Multipliers written after an amount of money: £1.2m, £450k, £2bn.
_MONEY_SCALE = {"k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9}
_SCALED = re.compile(r"^([+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)\s*(k|m|mn|bn)$", re.IGNORECASE)
# Longest first, so "working days" is tried before "days".
_SUFFIXES_LONGEST_FIRST = {u: sorted(suffixes, key=len, reverse=True) for u, suffixes in _SUFFIX_BY_UNIT.items()}
_NUMBER = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[+-]?\.\d+$")
_PAREN_NOTE = re.compile(r"^(.*?)\s*\(([^()]*)\)\s*$")
_RATE_SUFFIX = re.compile(r"^(.*?)\s*per\s+[\d,.]+\s*k?\b.*$", re.IGNORECASE)


def normalise_unit(text: str | None) -> str | None:
    """The canonical unit name for what a register says, or ``None`` if unknown."""
    if text is None:
        return None
    key = " ".join(str(text).split()).lower()
    if key in UNITS:
        return key
    return _UNIT_ALIASES.get(key)


@dataclass(frozen=True)
class Parsed:
    """What one raw cell value was read as.

    ``value`` is the number (``None`` when empty or "no data"); ``note`` is text found beside
    the number, such as ``provisional`` in ``546.4 (provisional)``; ``code`` is a finding code
    from the catalogue when the value could not be read or was normalised, and ``detail`` the
    words that go into that finding's message.
    """

    value: float | None
    note: str | None = None
    code: str | None = None
    detail: str | None = None
    no_data: bool = False


def _clean_text(s: str) -> str:
    s = s.replace("\u00a0", " ").replace("\u2212", "-").replace("\u2013", "-")
    return " ".join(s.split())


def describe(value: float, unit: str) -> str:
    """A value as a person would write it in that unit (for messages)."""
    if unit == "percent":
        return f"{value * 100:.4g}%"
    if unit == "money":
        return f"£{value:,.2f}".replace(".00", "")
    suffix = {"kg": "kg", "km": "km", "days": " days", "hours": " hours", "weeks": " weeks", "minutes": " minutes"}.get(unit, "")
    return f"{value:,.6g}{suffix}"


def parse_value(raw, unit: str) -> Parsed:
    """Read one cell meant to hold a number in ``unit``.

    Args:
        raw: the cell's value as a reader returns it (number, text, date, bool or ``None``).
        unit: one of :data:`UNITS`.

    Returns:
        A :class:`Parsed`; its ``code`` is ``None`` for a clean number, ``value-normalised``
        when text was read as a number, or an error code when it could not be read.
    """
    if raw is None:
        return Parsed(None)
    if isinstance(raw, bool):
        return Parsed(None, code="not-a-number", detail=f"TRUE/FALSE ({raw}) is not a number")
    if isinstance(raw, (dt.datetime, dt.date, dt.time, dt.timedelta)):
        return Parsed(None, code="date-not-number", detail=f"the cell holds a date or time ({raw})")
    if isinstance(raw, (int, float)):
        if not math.isfinite(raw):
            return Parsed(None, code="not-a-number", detail=f"{raw} is not a finite number")
        return Parsed(float(raw))
    text = _clean_text(str(raw))
    if text == "":
        return Parsed(None)
    if text.upper() in EXCEL_ERRORS:
        return Parsed(None, code="excel-error", detail=f"the cell shows the error {text}")
    if text.lower() in NO_DATA_WORDS:
        return Parsed(None, code="no-data-text", detail=f"'{text}' was read as no data", no_data=True)

    note = None
    m = _PAREN_NOTE.match(text)
    if m and m.group(1):
        text, note = m.group(1).strip(), m.group(2).strip() or None
    body = text
    if unit == "rate":
        r = _RATE_SUFFIX.match(body)
        if r and r.group(1):
            body = r.group(1).strip()
    percent_sign = body.endswith("%")
    if percent_sign:
        body = body[:-1].strip()
    pound = body.startswith("£") or body.startswith("-£")
    body = body.replace("£", "")
    lowered = body.lower()
    for u, suffixes in _SUFFIXES_LONGEST_FIRST.items():
        for suf in suffixes:
            if lowered.endswith(suf) and _NUMBER.match(body[: -len(suf)].strip() or "x"):
                if u != unit:
                    return Parsed(
                        None,
                        code="unit-mismatch",
                        detail=f"'{raw}' is in {u}, but this measure is reported in {unit}",
                    )
                body = body[: -len(suf)].strip()
                break
    body = body.replace(" ", "")
    scale = 1.0
    scaled = _SCALED.match(body)
    if scaled and (pound or unit == "money"):
        body, scale = scaled.group(1), _MONEY_SCALE[scaled.group(2).lower()]
    if not _NUMBER.match(body):
        if re.fullmatch(r"[+-]?\d+(,\d+)+(\.\d+)?", body) or re.fullmatch(r"[+-]?\d+,\d{1,2}", body):
            return Parsed(
                None,
                code="ambiguous-number",
                detail=f"'{raw}': the comma could be a thousands separator or a decimal point",
            )
        return Parsed(None, code="not-a-number", detail=f"'{raw}' is not a number")
    number = float(body.replace(",", "")) * scale
    if percent_sign and unit != "percent":
        return Parsed(
            None, code="unit-mismatch", detail=f"'{raw}' is a percentage, but this measure is in {unit}"
        )
    if pound and unit != "money":
        return Parsed(
            None, code="unit-mismatch", detail=f"'{raw}' is money, but this measure is in {unit}"
        )
    if percent_sign:
        number = number / 100
    return Parsed(
        number,
        note=note,
        code="value-normalised",
        detail=f"'{raw}' was read as {describe(number, unit)}",
    )
