"""The status rules: one definition, used by the validator, the master and the template's
live preview formula (see :func:`measure_status_formula`).

All functions here are pure. Percent measures are held as fractions, as Excel stores them
(a cell showing 4.7% holds 0.047); the rules are relative to the target, so the scale does not
matter as long as actual and target share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BLUE, GREEN, AMBER, RED = "Blue", "Green", "Amber", "Red"
GREEN_AMBER, AMBER_RED = "Green/Amber", "Amber/Red"
NO_TARGET, NO_DATA = "No target", "No data"
#: The status in the master of an item whose portfolio sent no valid return.
NO_RETURN = "No return"

#: Colours in order of merit, worst first; used to compare statuses.
RAG_ORDER = (RED, AMBER, GREEN, BLUE)

#: Every status the master can show, with its fill colour (the KEY of seed 004).
STATUS_COLOURS = {
    BLUE: "#4F81BD",
    GREEN: "#9BBB59",
    GREEN_AMBER: "#D7E4A0",
    AMBER: "#F9C74F",
    AMBER_RED: "#F4A460",
    RED: "#E06666",
    NO_TARGET: "#D9D9D9",
    NO_DATA: "#FFFFFF",
    NO_RETURN: "#7F7F7F",
}
#: Text colour that reads on each fill.
STATUS_FONT = {BLUE: "#FFFFFF", RED: "#FFFFFF", NO_RETURN: "#FFFFFF"}

IMPROVING, SAME, DETERIORATING = "Improving", "Same", "Deteriorating"

# Relative differences are rounded before comparing so that 98 against 100 (which floating
# point makes -0.020000000000000018) is "2% worse" and lands on the Green side of the boundary.
# The Excel preview formula rounds the same way.
_DIGITS = 9

ACTION_STATUSES = ("Completed", "On track", "Some slippage", "Major slippage")
_ACTION_WORDS = {
    "completed": BLUE,
    "complete": BLUE,
    "on track": GREEN,
    "some slippage": AMBER,
    "minor slippage": AMBER,
    "major slippage": RED,
}

PROJECT_STATUSES = (GREEN, GREEN_AMBER, AMBER, AMBER_RED, RED, BLUE)

RISK_MIN, RISK_MAX = 1, 4


@dataclass(frozen=True)
class Tolerances:
    """How far from target each colour reaches, as fractions of the target.

    The defaults are the KEY: Blue at 10% or more better, Green down to 2% worse, Amber down to
    10% worse, Red beyond. A register may set tighter ones per measure.
    """

    green_within: float = 0.02
    amber_within: float = 0.10
    blue_from: float = 0.10

    def __post_init__(self):
        for name in ("green_within", "amber_within", "blue_from"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")
        if self.amber_within < self.green_within:
            raise ValueError("amber_within must not be smaller than green_within")


KEY = Tolerances()


def _sign(polarity: str) -> int:
    p = (polarity or "").strip().lower()
    if p == "higher":
        return 1
    if p == "lower":
        return -1
    raise ValueError(f"polarity must be 'higher' or 'lower', not {polarity!r}")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def relative_performance(actual: float, target: float, polarity: str) -> float:
    """How much better than target, as a fraction of the target (negative when worse).

    A negative target (a Progress 8 score, say) is handled by dividing by its size.
    The target must not be zero.
    """
    return round((actual - target) / abs(target) * _sign(polarity), _DIGITS)


def measure_status(
    actual: float | None,
    target: float | None,
    polarity: str | None,
    tolerances: Tolerances = KEY,
) -> str:
    """The colour of a measure's actual against its target.

    Args:
        actual: the value reported; ``None`` when there is none.
        target: the register's target; ``None`` for "no target".
        polarity: ``"higher"`` or ``"lower"`` (which way is better).
        tolerances: per-measure tolerances; the KEY by default.

    Returns:
        ``Blue``, ``Green``, ``Amber``, ``Red``, ``No target`` or ``No data``.
    """
    if _missing(target):
        return NO_TARGET
    if _missing(actual):
        return NO_DATA
    if target == 0:
        # A zero target compares absolutely: met or not, no percentages.
        met = actual >= 0 if _sign(polarity) > 0 else actual <= 0
        return GREEN if met else RED
    rel = relative_performance(actual, target, polarity)
    if rel >= tolerances.blue_from:
        return BLUE
    if rel >= -tolerances.green_within:
        return GREEN
    if rel >= -tolerances.amber_within:
        return AMBER
    return RED


def measure_status_formula(
    actual_cell: str, target_cell: str, polarity: str | None, tolerances: Tolerances = KEY
) -> str:
    """The Excel formula that computes :func:`measure_status` live in a template.

    Polarity and tolerances are known when the template is written, so they go in as
    constants; actual and target are cell references. The formula needs nothing newer
    than Excel 2007 functions, so LibreOffice evaluates it identically.
    """
    a, t = actual_cell, target_cell
    if polarity is None:
        return f'=IF({t}="","{NO_TARGET}",IF({a}="","{NO_DATA}","Check polarity"))'
    s = _sign(polarity)
    rel = f"ROUND(({a}-{t})/ABS({t})*{s},{_DIGITS})"
    met = f"{a}>=0" if s > 0 else f"{a}<=0"
    return (
        f'=IF({t}="","{NO_TARGET}",IF({a}="","{NO_DATA}",IF(NOT(ISNUMBER({a})),"Not a number",'
        f'IF({t}=0,IF({met},"{GREEN}","{RED}"),'
        f'IF({rel}>={_num(tolerances.blue_from)},"{BLUE}",'
        f'IF({rel}>={_num(-tolerances.green_within)},"{GREEN}",'
        f'IF({rel}>={_num(-tolerances.amber_within)},"{AMBER}","{RED}")))))))'
    )


def _num(x: float) -> str:
    return repr(round(float(x), 12))


def normalise_action_status(word: str | None) -> str | None:
    """The canonical progress word (``Completed``...), or ``None`` when not recognised."""
    if word is None:
        return None
    key = " ".join(str(word).replace("\u00a0", " ").split()).lower()
    colour = _ACTION_WORDS.get(key)
    if colour is None:
        return None
    return {BLUE: "Completed", GREEN: "On track", AMBER: "Some slippage", RED: "Major slippage"}[
        colour
    ]


def action_status(word: str | None) -> str | None:
    """Colour of a Delivery Plan action's progress word; ``None`` when not recognised.

    Completed is Blue, On track Green, Some (or Minor) slippage Amber, Major slippage Red.
    """
    if word is None:
        return None
    key = " ".join(str(word).replace("\u00a0", " ").split()).lower()
    return _ACTION_WORDS.get(key)


def project_status(word: str | None) -> str | None:
    """The canonical project RAG (``Green/Amber``...), or ``None`` when not recognised."""
    if word is None:
        return None
    key = "".join(str(word).split()).lower()
    for status in PROJECT_STATUSES:
        if key == status.replace("/", "").lower() or key == status.lower():
            return status
    return None


def risk_score(likelihood: int, impact: int) -> int:
    """Likelihood times impact on the 4 x 4 matrix (each 1-4).

    Raises:
        ValueError: when either is outside 1-4 or not whole.
    """
    for name, v in (("likelihood", likelihood), ("impact", impact)):
        if isinstance(v, bool) or not isinstance(v, int) or not RISK_MIN <= v <= RISK_MAX:
            raise ValueError(f"{name} must be a whole number 1-4, not {v!r}")
    return likelihood * impact


#: The bands of a risk score (likelihood x impact): (lowest, highest, colour).
RISK_BANDS = ((RISK_MIN, 4, GREEN), (5, 9, AMBER), (10, RISK_MAX * RISK_MAX, RED))


def risk_status(score: int | None) -> str | None:
    """The band of a risk score: 1-4 Green (low), 6-9 Amber (medium), 12-16 Red (high)."""
    if score is None:
        return None
    return next(colour for low, high, colour in RISK_BANDS if score <= high)


def key_rows(tolerances: Tolerances = KEY) -> tuple[tuple[str, str, str], ...]:
    """The colour KEY in words, as the templates show it: per colour, the measure's band
    against target and the action status of that colour."""

    def pct(x: float) -> str:
        return f"{x * 100:g}%"

    b, g, a = pct(tolerances.blue_from), pct(tolerances.green_within), pct(tolerances.amber_within)
    bands = (
        f"{b} or more better than target",
        f"from {g} worse than target to under {b} better",
        f"more than {g} and up to {a} worse than target",
        f"more than {a} worse than target",
    )
    return tuple(zip((BLUE, GREEN, AMBER, RED), bands, ACTION_STATUSES))


def direction_of_travel(current: float | None, earlier: float | None, polarity: str | None):
    """Improving, Same or Deteriorating from an earlier value to the current one.

    Returns ``None`` when either value or the polarity is missing.
    """
    if _missing(current) or _missing(earlier) or not polarity:
        return None
    diff = round((current - earlier) * _sign(polarity), _DIGITS)
    if diff > 0:
        return IMPROVING
    if diff < 0:
        return DETERIORATING
    return SAME


def rank(status: str) -> int | None:
    """Position of a colour in :data:`RAG_ORDER` (Red 0 ... Blue 3); ``None`` for others."""
    try:
        return RAG_ORDER.index(status)
    except ValueError:
        return None
