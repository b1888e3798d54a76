"""The status rules, as tables of cases. Boundaries exactly as the KEY writes them."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from derbyxl import rag
from derbyxl.rag import Tolerances, direction_of_travel, measure_status


@pytest.mark.parametrize(
    "actual, target, polarity, expected",
    [
        # higher is better, target 100
        (110, 100, "higher", "Blue"),  # exactly 10% better is Blue
        (109.99, 100, "higher", "Green"),
        (100, 100, "higher", "Green"),
        (98, 100, "higher", "Green"),  # exactly 2% worse is Green
        (97.99, 100, "higher", "Amber"),
        (90, 100, "higher", "Amber"),  # exactly 10% worse is Amber
        (89.99, 100, "higher", "Red"),
        (0, 100, "higher", "Red"),
        # lower is better, target 100
        (90, 100, "lower", "Blue"),
        (90.01, 100, "lower", "Green"),
        (102, 100, "lower", "Green"),
        (102.01, 100, "lower", "Amber"),
        (110, 100, "lower", "Amber"),
        (110.01, 100, "lower", "Red"),
        # percent measures as Excel stores them (fractions)
        (0.97, 0.94, "higher", "Green"),  # 3.2% above
        (0.074, 0.047, "lower", "Red"),  # NEET: 7.4% against 4.7%
        (0.98, 1.0, "higher", "Green"),  # float noise at the 2% boundary
        (0.9, 1.0, "higher", "Amber"),
        # zero target compares absolutely
        (0, 0, "lower", "Green"),
        (1, 0, "lower", "Red"),
        (-1, 0, "higher", "Red"),
        (0, 0, "higher", "Green"),
        # negative targets (Progress 8 scores)
        (-0.17, -0.17, "higher", "Green"),
        (-0.15, -0.17, "higher", "Blue"),  # 11.8% better
        (-0.21, -0.17, "higher", "Red"),  # 23.5% worse
        (-0.18, -0.17, "higher", "Amber"),
        # no target, no value
        (5, None, "higher", "No target"),
        (None, 100, "higher", "No data"),
        (None, None, "higher", "No target"),
        (float("nan"), 100, "higher", "No data"),
    ],
)
def test_measure_status(actual, target, polarity, expected):
    assert measure_status(actual, target, polarity) == expected


def test_tolerances_override_the_key():
    tight = Tolerances(green_within=0.005)
    # Council Tax: 93.25% collected against 93.8% is 0.59% short: Green by the KEY, Amber here.
    assert measure_status(0.9325, 0.938, "higher") == "Green"
    assert measure_status(0.9325, 0.938, "higher", tight) == "Amber"


@pytest.mark.parametrize("bad", [dict(green_within=-0.1), dict(green_within=0.2, amber_within=0.1), dict(blue_from=float("nan"))])
def test_tolerances_refuse_nonsense(bad):
    with pytest.raises(ValueError):
        Tolerances(**bad)


def test_unknown_polarity_is_an_error():
    with pytest.raises(ValueError):
        measure_status(1, 2, "sideways")


@pytest.mark.parametrize(
    "word, colour",
    [("Completed", "Blue"), ("on track", "Green"), ("Some slippage", "Amber"), ("Minor  slippage", "Amber"), ("MAJOR SLIPPAGE", "Red"), ("Done", None), (None, None)],
)
def test_action_status(word, colour):
    assert rag.action_status(word) == colour


@pytest.mark.parametrize("word, status", [("green/amber", "Green/Amber"), ("Amber / Red", "Amber/Red"), ("Blue", "Blue"), ("purple", None)])
def test_project_status(word, status):
    assert rag.project_status(word) == status


@pytest.mark.parametrize("li, im, score, band", [(1, 1, 1, "Green"), (2, 2, 4, "Green"), (3, 2, 6, "Amber"), (3, 3, 9, "Amber"), (4, 3, 12, "Red"), (4, 4, 16, "Red")])
def test_risk(li, im, score, band):
    assert rag.risk_score(li, im) == score
    assert rag.risk_status(score) == band


@pytest.mark.parametrize("li, im", [(0, 1), (5, 1), (1, 5), (2.5, 1), (True, 2), ("3", 3)])
def test_risk_rejects(li, im):
    with pytest.raises(ValueError):
        rag.risk_score(li, im)


@pytest.mark.parametrize(
    "current, earlier, polarity, dot",
    [
        (7.4, 4.7, "lower", "Deteriorating"),
        (97, 92, "higher", "Improving"),
        (5, 5, "higher", "Same"),
        (0.3, 0.1 + 0.2, "higher", "Same"),
        (3, 4, "lower", "Improving"),
        (None, 4, "lower", None),
        (3, None, "lower", None),
        (3, 4, None, None),
    ],
)
def test_direction_of_travel(current, earlier, polarity, dot):
    assert direction_of_travel(current, earlier, polarity) == dot


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(actual=finite, better=st.floats(min_value=0, max_value=1e6), target=finite, polarity=st.sampled_from(["higher", "lower"]))
def test_improving_the_actual_never_worsens_the_status(actual, better, target, polarity):
    improved = actual + better if polarity == "higher" else actual - better
    before, after = measure_status(actual, target, polarity), measure_status(improved, target, polarity)
    assert rag.rank(after) >= rag.rank(before)


@given(actual=finite, target=finite, polarity=st.sampled_from(["higher", "lower"]))
def test_status_is_always_a_colour(actual, target, polarity):
    assert measure_status(actual, target, polarity) in rag.RAG_ORDER


def test_the_key_in_words_follows_the_tolerances():
    from derbyxl.rag import AMBER, BLUE, GREEN, KEY, RED, RISK_BANDS, Tolerances, key_rows, risk_status

    assert key_rows(KEY) == (
        (BLUE, "10% or more better than target", "Completed"),
        (GREEN, "from 2% worse than target to under 10% better", "On track"),
        (AMBER, "more than 2% and up to 10% worse than target", "Some slippage"),
        (RED, "more than 10% worse than target", "Major slippage"),
    )
    assert key_rows(Tolerances(green_within=0.005, amber_within=0.05, blue_from=0.2))[1][1] == "from 0.5% worse than target to under 20% better"
    # Every possible score falls in exactly one band, the one risk_status gives.
    for score in {li * im for li in range(1, 5) for im in range(1, 5)}:
        (band,) = [colour for low, high, colour in RISK_BANDS if low <= score <= high]
        assert risk_status(score) == band
