import datetime as dt

import pytest

from derbyxl.periods import Period, PeriodError


@pytest.mark.parametrize(
    "text, key, label",
    [
        ("2024-25-Q4", "2024-25-Q4", "2024/25 Q4"),
        ("2024/25 Q4", "2024-25-Q4", "2024/25 Q4"),
        ("2024/2025 Q1", "2024-25-Q1", "2024/25 Q1"),
        (" 2099-00-q2 ", "2099-00-Q2", "2099/00 Q2"),
    ],
)
def test_parse(text, key, label):
    p = Period.parse(text)
    assert (p.key, p.label, str(p)) == (key, label, label)


@pytest.mark.parametrize("text", ["2024-26-Q4", "2024-25-Q5", "Q4", "", "2024-25", "24-25-Q1"])
def test_parse_rejects(text):
    with pytest.raises(PeriodError):
        Period.parse(text)


def test_neighbours():
    p = Period.parse("2024-25-Q1")
    assert p.previous == Period(2023, 4)
    assert p.year_ago == Period(2023, 1)
    assert Period(2024, 4).next == Period(2025, 1)
    assert Period(2024, 4).previous.previous.previous == p


@pytest.mark.parametrize(
    "q, start, end",
    [(1, dt.date(2024, 4, 1), dt.date(2024, 6, 30)), (3, dt.date(2024, 10, 1), dt.date(2024, 12, 31)), (4, dt.date(2025, 1, 1), dt.date(2025, 3, 31))],
)
def test_dates(q, start, end):
    p = Period(2024, q)
    assert (p.start, p.end) == (start, end)
    assert p.due_date() > p.end


def test_order():
    assert sorted([Period(2024, 4), Period(2023, 4), Period(2024, 1)]) == [Period(2023, 4), Period(2024, 1), Period(2024, 4)]
