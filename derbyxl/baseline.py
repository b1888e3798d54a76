"""What a measure's actual is compared with: one answer for the template, the checks and the
master.

- The **baseline** of a measure for a quarter is the latest value known before it: the latest
  recorded actual in the history, else the register's ``Previous actual``. The template shows
  it as "Previous actual", plausibility (``large-change``) measures against it, and direction
  of travel in the short term uses it when it is for the quarter just before.
- The **year-ago** value is the actual of the same quarter last year in the history, else the
  register's ``Previous actual`` when it is for that quarter (``Previous period``; a register
  without that column holds last year's outturn, which is the year-ago value at Q4 only).

Either comes with the period it is for, so every direction of travel says what it compared,
and none compares with a value whose period is unknown or another one ("No comparison").

A measure whose register profiles its target by quarter (``Target Q1`` .. ``Q4``: a cumulative
measure such as council tax collected, 28% at Q1 against 95% for the year) is compared across
quarters on the footing of those targets (:func:`comparable`): 29% at Q1 after 96% at last
year's Q4 is no collapse when the targets were 28% and 95%.

    from derbyxl.baseline import baseline, year_ago
    b = baseline(item, period, history.latest_values(before=period))
    b.value, b.period   # 0.95, "2024-25-Q4" (for 2025/26 Q1)
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

from derbyxl.periods import Period
from derbyxl.register import Item

#: The direction of travel when there is nothing to compare with.
NO_COMPARISON = "No comparison"


class Earlier(NamedTuple):
    """An earlier value of a measure and where it came from (a named tuple: one is made for
    each measure of every return, and a tuple is made several times faster than a frozen
    dataclass).

    Attributes:
        value: the actual.
        period: the key of the quarter it is for (None when the register does not say).
        source: ``history`` or ``register``.
    """

    value: float
    period: str | None
    source: str


def register_period(item: Item, period: Period) -> str | None:
    """The quarter the register's Previous actual is for: its ``Previous period`` when given,
    else last year's Q4 when ``period`` is a Q4 (a register's previous actual is last year's
    outturn), else unknown."""
    if item.previous_period:
        return item.previous_period
    if period.quarter == 4:
        return period.year_ago.key
    return None


def baseline(item: Item, period: Period, latest: Mapping[str, tuple[str, float]]) -> Earlier | None:
    """The latest value known before ``period``: from ``latest`` (the history's, by ref:
    (period key, actual), see :meth:`derbyxl.history.History.latest_values`), else the
    register's Previous actual; a register value for ``period`` itself or later is no baseline."""
    # Period keys (2024-25-Q4) sort as the quarters do, so they are compared as text.
    found = latest.get(item.ref)
    from_register = None
    if item.previous_actual is not None:
        when = register_period(item, period)
        if when is None or when < period.key:
            from_register = Earlier(item.previous_actual, when, "register")
    if found is not None:
        key, value = found
        # The register may know a later quarter than the history (a council's own figure).
        if from_register is not None and from_register.period and from_register.period > key:
            return from_register
        return Earlier(value, key, "history")
    return from_register


def year_ago(item: Item, period: Period, recorded: Mapping[str, dict]) -> Earlier | None:
    """The same quarter last year: from ``recorded`` (the history's values of that quarter,
    by ref), else the register's Previous actual when it is for that quarter."""
    then = period.year_ago.key
    row = recorded.get(item.ref)
    if row is not None and row.get("actual") is not None:
        return Earlier(row["actual"], then, "history")
    if item.previous_actual is not None and register_period(item, period) == then:
        return Earlier(item.previous_actual, then, "register")
    return None


def short_term(item: Item, period: Period, latest: Mapping[str, tuple[str, float]]) -> Earlier | None:
    """The baseline when it is for the quarter just before ``period`` (else None)."""
    b = baseline(item, period, latest)
    return b if b is not None and b.period == period.previous.key else None


def comparable(item: Item, earlier: Earlier, period: Period) -> float:
    """``earlier``'s value on the footing of ``period``: for a measure with quarter targets,
    scaled by the ratio of this quarter's target to that of the quarter it is for (a value
    of another quarter of a cumulative measure is otherwise no yardstick); else as it is."""
    if item.quarter_targets is not None and earlier.period:
        now, then = item.target_for(period.quarter), item.target_for(Period.parse(earlier.period).quarter)
        if now and then:
            return earlier.value * now / then
    return earlier.value
