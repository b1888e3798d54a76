"""Values as officers type them: what is read, and what is refused and why."""

import datetime as dt

import pytest

from derbyxl.values import describe, normalise_unit, parse_value


@pytest.mark.parametrize(
    "raw, unit, value, note, code",
    [
        (7.4, "number", 7.4, None, None),
        (0.074, "percent", 0.074, None, None),
        ("7.4%", "percent", 0.074, None, "value-normalised"),
        ("3,134", "number", 3134, None, "value-normalised"),
        ("£30,710,876", "money", 30710876, None, "value-normalised"),
        ("535kg", "kg", 535, None, "value-normalised"),
        ("5.41km", "km", 5.41, None, "value-normalised"),
        ("110.4 per 10,000 population", "rate", 110.4, None, "value-normalised"),
        ("91.9% (Q3 data)", "percent", 0.919, "Q3 data", "value-normalised"),
        ("561.3 per 100k population (provisional)", "rate", 561.3, "provisional", "value-normalised"),
        ("28.7% (2022)", "percent", 0.287, "2022", "value-normalised"),
        ("\u22120.79", "score", -0.79, None, "value-normalised"),
        ("12.75 days", "days", 12.75, None, "value-normalised"),
        ("£1.2m", "money", 1_200_000, None, "value-normalised"),
        ("£450k", "money", 450_000, None, "value-normalised"),
        ("2.5m", "money", 2_500_000, None, "value-normalised"),
        ("£1.2m (provisional)", "money", 1_200_000, "provisional", "value-normalised"),
        ("1.2m", "number", None, None, "not-a-number"),  # a million of what? not guessed
        ("£1.2m", "number", None, None, "unit-mismatch"),
        ("3.5 hours", "hours", 3.5, None, "value-normalised"),
        ("6 wks", "weeks", 6, None, "value-normalised"),
        ("45 mins", "minutes", 45, None, "value-normalised"),
        ("3.5 hours", "days", None, None, "unit-mismatch"),
        (None, "number", None, None, None),
        ("  ", "number", None, None, None),
        ("data not yet available", "percent", None, None, "no-data-text"),
        ("N/A", "number", None, None, "no-data-text"),
        ("about 40", "number", None, None, "not-a-number"),
        ("1,5", "number", None, None, "ambiguous-number"),
        ("1,50,000", "number", None, None, "ambiguous-number"),
        ("7.4%", "number", None, None, "unit-mismatch"),
        ("£300", "number", None, None, "unit-mismatch"),
        ("535kg", "km", None, None, "unit-mismatch"),
        ("#REF!", "number", None, None, "excel-error"),
        (dt.datetime(2025, 3, 4), "number", None, None, "date-not-number"),
        (True, "number", None, None, "not-a-number"),
        (float("inf"), "number", None, None, "not-a-number"),
    ],
)
def test_parse_value(raw, unit, value, note, code):
    p = parse_value(raw, unit)
    assert (p.value if p.value is None else pytest.approx(p.value)) == value
    assert (p.note, p.code) == (note, code)


def test_normalised_finding_says_what_was_read():
    assert parse_value("7.4%", "percent").detail == "'7.4%' was read as 7.4%"
    assert parse_value("£30,710,876", "money").detail == "'£30,710,876' was read as £30,710,876"


@pytest.mark.parametrize("text, unit", [("%", "percent"), ("Percent", "percent"), ("£", "money"), ("count", "number"), (" KG ", "kg"), ("furlongs", None)])
def test_units(text, unit):
    assert normalise_unit(text) == unit


def test_describe():
    assert describe(0.074, "percent") == "7.4%"
    assert describe(535, "kg") == "535kg"
