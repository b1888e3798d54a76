"""The figures the council publishes per theme and per portfolio (seed 004, first page),
computed from consolidated rows. Pure functions: the master and any future portal use them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from derbyxl import rag
from derbyxl.rag import NO_RETURN

MEASURE_STATUSES = (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED, rag.NO_TARGET, rag.NO_DATA)
#: Every status an item of any kind can have in the master, in the order the Summary shows them.
STATUSES = (rag.BLUE, rag.GREEN, rag.GREEN_AMBER, rag.AMBER, rag.AMBER_RED, rag.RED, rag.NO_TARGET, rag.NO_DATA, NO_RETURN)
KINDS = ("measure", "action", "project", "risk")
_DIRECTIONS = (rag.IMPROVING, rag.SAME, rag.DETERIORATING)


@dataclass
class Summary:
    """Counts and percentages for one group of items (a theme, a portfolio, or all).

    Each percentage comes with what it is out of: ``rated`` measures with a target and a value,
    ``compared`` measures compared with the same quarter last year, ``actions`` and ``projects``
    with a status.
    """

    name: str
    counts: Counter
    #: Every item's status, whatever its kind, "No return" included.
    status: Counter
    #: By kind, each item's status: ``by_kind["risk"]["Red"]``.
    by_kind: dict[str, Counter]
    pct_meeting_target: float | None
    rated: int
    pct_improved: float | None
    compared: int
    pct_actions_on_track: float | None
    actions: int
    pct_projects_green: float | None
    projects: int

    @property
    def measure_status(self) -> Counter:
        return self.by_kind["measure"]


def _pct(num: int, den: int) -> float | None:
    return num / den if den else None


def summarise(rows: list[dict], name: str) -> Summary:
    """Summarise rows (as built by :func:`derbyxl.consolidate.build_rows`).

    - % meeting target: Blue or Green among measures with a target and a value;
    - % improved: year-on-year direction Improving among measures that were compared with
      the same quarter last year (``compared`` says how many);
    - % actions delivered or on track: Blue or Green among actions with a status;
    - % projects Green or Green/Amber (or Blue, complete) among projects with a status.
    """
    counts: Counter = Counter()
    by_kind: dict[str, Counter] = {k: Counter() for k in KINDS}
    dots: Counter = Counter()
    actions = actions_on_track = projects = projects_green = 0
    for r in rows:  # one pass: a thousand portfolios are summarised in a blink
        kind, st = r["kind"], r["status"]
        counts[kind] += 1
        by_kind[kind][st] += 1
        if kind == "measure":
            if r.get("dot") in _DIRECTIONS:
                dots[r["dot"]] += 1
        elif kind == "action" and st in rag.RAG_ORDER:
            actions += 1
            actions_on_track += st in (rag.BLUE, rag.GREEN)
        elif kind == "project" and st in rag.PROJECT_STATUSES:
            projects += 1
            projects_green += st in (rag.GREEN, rag.GREEN_AMBER, rag.BLUE)
    status: Counter = Counter()
    for c in by_kind.values():
        status.update(c)
    measures = by_kind["measure"]
    rated = sum(measures[s] for s in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED))
    return Summary(
        name=name,
        counts=counts,
        status=status,
        by_kind=by_kind,
        pct_meeting_target=_pct(measures[rag.BLUE] + measures[rag.GREEN], rated),
        rated=rated,
        pct_improved=_pct(dots[rag.IMPROVING], sum(dots.values())),
        compared=sum(dots.values()),
        pct_actions_on_track=_pct(actions_on_track, actions),
        actions=actions,
        pct_projects_green=_pct(projects_green, projects),
        projects=projects,
    )


def by_group(rows: list[dict], key: str, order: list[str]) -> list[Summary]:
    """One summary per value of ``key`` (``theme`` or ``portfolio``), in ``order``."""
    groups: dict[str, list[dict]] = {g: [] for g in order}
    for r in rows:
        if r[key] in groups:
            groups[r[key]].append(r)
    return [summarise(groups[g], g) for g in order]
