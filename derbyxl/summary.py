"""The figures the council publishes per theme and per portfolio (seed 004, first page),
computed from consolidated rows. Pure functions: the master and any future portal use them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from derbyxl import rag

MEASURE_STATUSES = (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED, rag.NO_TARGET, rag.NO_DATA)


@dataclass
class Summary:
    """Counts and percentages for one group of items (a theme, a portfolio, or all)."""

    name: str
    counts: Counter
    measure_status: Counter
    pct_meeting_target: float | None
    pct_improved: float | None
    pct_actions_on_track: float | None
    pct_projects_green: float | None


def _pct(num: int, den: int) -> float | None:
    return num / den if den else None


def summarise(rows: list[dict], name: str) -> Summary:
    """Summarise rows (as built by :func:`derbyxl.consolidate.build_rows`).

    - % meeting target: Blue or Green among measures with a target and a value;
    - % improved: long-term direction Improving among measures with a direction;
    - % actions delivered or on track: Blue or Green among actions with a status;
    - % projects Green or Green/Amber (or Blue, complete) among projects with a status.
    """
    counts = Counter(r["kind"] for r in rows)
    measures = [r for r in rows if r["kind"] == "measure"]
    status = Counter(r["status"] for r in measures)
    rated = sum(status[s] for s in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED))
    met = status[rag.BLUE] + status[rag.GREEN]
    dots = Counter(r.get("dot") for r in measures if r.get("dot"))
    actions = [r for r in rows if r["kind"] == "action" and r["status"] in rag.RAG_ORDER]
    projects = [r for r in rows if r["kind"] == "project" and r["status"] in rag.PROJECT_STATUSES]
    return Summary(
        name=name,
        counts=counts,
        measure_status=status,
        pct_meeting_target=_pct(met, rated),
        pct_improved=_pct(dots[rag.IMPROVING], sum(dots.values())),
        pct_actions_on_track=_pct(sum(r["status"] in (rag.BLUE, rag.GREEN) for r in actions), len(actions)),
        pct_projects_green=_pct(sum(r["status"] in (rag.GREEN, rag.GREEN_AMBER, rag.BLUE) for r in projects), len(projects)),
    )


def by_group(rows: list[dict], key: str, order: list[str]) -> list[Summary]:
    """One summary per value of ``key`` (``theme`` or ``portfolio``), in ``order``."""
    return [summarise([r for r in rows if r[key] == g], g) for g in order]
