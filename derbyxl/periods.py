"""Reporting periods: quarters of the council's financial year (1 April to 31 March).

A period is written ``2024-25-Q4`` on the command line and shown as ``2024/25 Q4``. Q1 is
April-June, Q4 is January-March of the second calendar year. The ways councils write a quarter
are read too when they are unambiguous: ``2024/25 Q4``, ``Q4 2024/25``, ``Q4 24/25``,
``Jan-Mar 2025`` and ``March 2025`` (the quarter that month ends).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

_PATTERN = re.compile(
    r"^\s*(?:FY\s*)?(\d{4})\s*[-/]\s*(\d{2}|\d{4})\s*[-/ _,]?\s*Q([1-4])\s*$", re.IGNORECASE
)
#: The quarter first: ``Q4 2024/25``, ``Q4 24/25``, ``Q4 FY2024-25``.
_QUARTER_FIRST = re.compile(
    r"^\s*Q([1-4])\s*[-/ _,]?\s*(?:FY\s*)?(\d{4}|\d{2})\s*[-/]\s*(\d{2}|\d{4})\s*$", re.IGNORECASE
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
#: Months: ``March 2025`` (the quarter that month ends) or ``Jan-Mar 2025`` (a quarter's months).
_MONTH = re.compile(r"^\s*(?:([a-z]{3,9})\s*(?:-|to|–)\s*)?([a-z]{3,9})\.?\s*(\d{4})\s*$", re.IGNORECASE)


class PeriodError(ValueError):
    """A text that is not a reporting period."""


@dataclass(frozen=True, order=True)
class Period:
    """One quarter of a financial year; ``start_year`` is the year the financial year begins."""

    start_year: int
    quarter: int

    def __post_init__(self):
        if not 1 <= self.quarter <= 4:
            raise PeriodError(f"quarter must be 1-4, not {self.quarter}")
        if not 1900 <= self.start_year <= 9998:
            raise PeriodError(f"year {self.start_year} is out of range")

    @classmethod
    def parse(cls, text: str | Period) -> Period:
        """Read ``2024-25-Q4``, ``2024/25 Q4`` or ``2024/2025 Q4``.

        Raises:
            PeriodError: when the text is not a period or the two years do not follow each other.
        """
        if isinstance(text, Period):
            return text
        return _parse(str(text))

    @classmethod
    def _read(cls, text: str) -> Period:
        m = _PATTERN.match(text)
        if m:
            start_text, end, q = m.group(1), m.group(2), int(m.group(3))
        elif (m := _QUARTER_FIRST.match(text)) is not None:
            q, start_text, end = int(m.group(1)), m.group(2), m.group(3)
            if len(start_text) == 2:
                start_text = "20" + start_text
        else:
            by_month = _from_months(text)
            if by_month is None:
                raise PeriodError(f"{text!r} is not a period; write it like 2024-25-Q4 or '2024/25 Q4'")
            return by_month
        start = int(start_text)
        end_year = int(end) if len(end) == 4 else (start // 100) * 100 + int(end)
        if len(end) == 2 and end_year < start:
            end_year += 100
        if end_year != start + 1:
            raise PeriodError(f"{text!r}: a financial year runs over two consecutive years")
        return cls(start, q)

    # Periods are frozen, so what is worked out from one is kept on it (cached_property writes
    # to the instance's __dict__, past the frozen __setattr__): a quarter of 200,000 items asks
    # for the same quarter's key, label and neighbours hundreds of thousands of times.
    @functools.cached_property
    def key(self) -> str:
        """The form used in file names and on the command line: ``2024-25-Q4``."""
        return f"{self.start_year}-{(self.start_year + 1) % 100:02d}-Q{self.quarter}"

    @functools.cached_property
    def label(self) -> str:
        """The form people read: ``2024/25 Q4``."""
        return f"{self.start_year}/{(self.start_year + 1) % 100:02d} Q{self.quarter}"

    @property
    def year_label(self) -> str:
        return f"{self.start_year}/{(self.start_year + 1) % 100:02d}"

    def __str__(self) -> str:
        return self.label

    @functools.cached_property
    def previous(self) -> Period:
        """The quarter before (Q4 of the year before for a Q1)."""
        if self.quarter == 1:
            return Period(self.start_year - 1, 4)
        return Period(self.start_year, self.quarter - 1)

    @functools.cached_property
    def next(self) -> Period:
        if self.quarter == 4:
            return Period(self.start_year + 1, 1)
        return Period(self.start_year, self.quarter + 1)

    @functools.cached_property
    def year_ago(self) -> Period:
        """The same quarter of the previous financial year."""
        return Period(self.start_year - 1, self.quarter)

    @property
    def start(self) -> dt.date:
        month = 4 + 3 * (self.quarter - 1)
        year = self.start_year + (month > 12)
        return dt.date(year, (month - 1) % 12 + 1, 1)

    @property
    def end(self) -> dt.date:
        nxt = self.next.start
        return nxt - dt.timedelta(days=1)

    def due_date(self, days_after_end: int = 21) -> dt.date:
        """When returns are due: by default three weeks after the quarter ends."""
        return self.end + dt.timedelta(days=days_after_end)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Period:
    """:meth:`Period.parse` of a text, kept: the same few texts are parsed again and again."""
    return Period._read(text)


def _month(word: str) -> int | None:
    word = word.lower()
    for i, name in enumerate(_MONTHS, start=1):
        if word.startswith(name) and (len(word) == 3 or _FULL_MONTHS[i - 1].startswith(word)):
            return i
    return None


_FULL_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december")


def _from_months(text: str) -> Period | None:
    """``March 2025`` (the quarter ending in March 2025) or ``Jan-Mar 2025``
    (the first and last months of one quarter); None when the text is neither."""
    m = _MONTH.match(text)
    if not m:
        return None
    last = _month(m.group(2))
    first = _month(m.group(1)) if m.group(1) else None
    if last is None or (m.group(1) and first is None):
        return None
    if first is not None and (last - first) % 12 != 2:
        return None  # not the months of one quarter
    if first is None and last % 3 != 0:
        return None  # "January 2025": a month inside a quarter says no quarter for sure
    year = int(m.group(3))
    if first is not None and first > last:
        year -= 1  # "Nov-Jan 2025" would start in 2024; no financial quarter does, refused below
    quarter = ((last - 4) % 12) // 3 + 1
    start_year = year if last >= 4 else year - 1
    if first is not None and ((first - 4) % 12) // 3 + 1 != quarter:
        return None
    return Period(start_year, quarter)


def period_key(text: str | Period | None) -> str | None:
    """The key (``2024-25-Q4``) of a period however it is written, or None when the text is
    empty or not a period: two texts name the same quarter when their keys are equal."""
    if not text:
        return None
    try:
        return Period.parse(text).key
    except PeriodError:
        return None


@functools.lru_cache(maxsize=256)
def period_label(text: str | None) -> str | None:
    """A period as people read it (``2024/25 Q4``) however it is written; the text as it is
    when it is not a period (None for None)."""
    if not text:
        return text
    try:
        return Period.parse(text).label
    except PeriodError:
        return text


def long_date(day: dt.date) -> str:
    """A date written out as a Cover and the portal show it: ``Monday 21 April 2025``."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def uk_time(iso: str | None) -> str:
    """A recorded time as a UK reader writes it: ``1 Dec 2026 07:23 UTC`` (the text as it is
    when it is not an ISO 8601 time)."""
    try:
        t = dt.datetime.fromisoformat(str(iso))
    except (TypeError, ValueError):
        return str(iso or "")
    zone = " UTC" if t.utcoffset() == dt.timedelta(0) else ""
    return f"{t.day} {t.strftime('%b %Y %H:%M')}{zone}"
