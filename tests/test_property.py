"""The round trip STYLE.md asks for: any generated template, filled in with any valid values,
reads back and validates, with the values as typed and the statuses the rules give."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derbyxl import rag
from derbyxl.demo import fill_return
from derbyxl.periods import Period
from derbyxl.register import load_register
from derbyxl.template import write_template
from derbyxl.validate import validate_file

from .conftest import write_council_register

PERIODS = [Period.parse(p) for p in ("2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4")]
WORDS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80).filter(lambda s: s.strip())


@pytest.fixture(scope="module")
def council(tmp_path_factory):
    folder = tmp_path_factory.mktemp("property")
    register = load_register(write_council_register(folder / "register.csv"))
    templates = {(p, q.key): write_template(register, p, q, folder / q.key).path for p in register.portfolios for q in PERIODS}
    return register, templates, folder


def _actual(item):
    if item.unit == "percent":
        return st.floats(0, 1, allow_nan=False)
    return st.one_of(st.integers(0, 10**7).map(float), st.floats(0, 1e7, allow_nan=False, allow_infinity=False))


@st.composite
def filled(draw, register):
    portfolio = draw(st.sampled_from(register.portfolios))
    period = draw(st.sampled_from(PERIODS))
    answers = {}
    for item in register.for_portfolio(portfolio):
        commentary = draw(WORDS)
        if item.kind == "measure":
            answers[item.ref] = {"actual": draw(_actual(item)), "commentary": commentary}
        elif item.kind == "action":
            answers[item.ref] = {"status": draw(st.sampled_from(rag.ACTION_STATUSES)), "commentary": commentary}
        elif item.kind == "project":
            answers[item.ref] = {"status": draw(st.sampled_from(rag.PROJECT_STATUSES)), "commentary": commentary}
        else:
            answers[item.ref] = {"likelihood": draw(st.integers(1, 4)), "impact": draw(st.integers(1, 4)), "commentary": commentary}
    return portfolio, period, answers


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_filled_template_reads_back_and_validates(council, data):
    register, templates, folder = council
    portfolio, period, answers = data.draw(filled(register))
    path = fill_return(templates[(portfolio, period.key)], answers, folder / "filled.xlsx")
    report = validate_file(path, register, period=period)
    assert [f for f in report.findings if f.severity == "error"] == []
    assert {f.code for f in report.findings} <= {"large-change"}
    rows = {r["ref"]: r for r in report.rows}
    assert set(rows) == {i.ref for i in register.for_portfolio(portfolio)}
    for item in register.for_portfolio(portfolio):
        got, typed = rows[item.ref], answers[item.ref]
        assert got["commentary"] == typed["commentary"].strip()
        if item.kind == "measure":
            assert math.isclose(got["actual"], typed["actual"], rel_tol=1e-12, abs_tol=1e-12)
            assert got["status"] == rag.measure_status(typed["actual"], item.target_for(period.quarter), item.polarity, item.tolerances)
        elif item.kind == "action":
            assert got["status"] == rag.action_status(typed["status"])
        elif item.kind == "project":
            assert got["status"] == rag.project_status(typed["status"])
        else:
            assert got["score"] == typed["likelihood"] * typed["impact"]
