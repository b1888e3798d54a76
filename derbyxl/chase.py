"""Who has returned what this quarter, and whom to chase: one row per portfolio of the register.

    from derbyxl.chase import quarter_status, write_chase_csv
    report = validate_paths(["returns/"], register, period="2024-25-Q4")
    rows = quarter_status(report, register)    # dicts: portfolio, status, lead officers, ...
    write_chase_csv(rows, "outputs/chase.csv")  # for a mail merge, those to chase first

A portfolio has returned when any file for the quarter checked names it (valid or not): its
status is ``valid`` when one of them is (the one consolidate would use is named when there are
several), ``errors`` when none is, else ``not returned``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from derbyxl.findings import ERROR, Report
from derbyxl.periods import Period, period_key
from derbyxl.register import Register
from derbyxl.xlsx_util import ensure_folder, looks_like_formula

#: The statuses, those to chase first.
STATUSES = ("not returned", "errors", "valid")
#: The columns of :func:`quarter_status`'s rows, in the CSV's order, and their captions there.
COLUMNS = ("portfolio", "status", "lead_officers", "emails", "files", "errors", "warnings", "action")
CAPTIONS = ("Portfolio", "Status", "Lead officers", "Emails", "Files received", "Errors", "Warnings", "What to do")


def quarter_status(report: Report, register: Register) -> list[dict]:
    """One row per portfolio of ``register`` (see :data:`COLUMNS`): what was received for the
    quarter ``report`` was checked against, and what its lead officers should do. Rows to
    chase come first (not returned, then returns with errors), each group in register order.
    Errors and warnings are those of the file that counts: the one consolidate would use, or
    when none is valid, the one with the fewest errors (the one the action names).
    """
    from derbyxl.consolidate import choose_submissions

    quarter = period_key(report.period)
    the_return = f"the {Period.parse(quarter).label} return" if quarter else "this quarter's return"
    files = report.by_portfolio()
    used = {p: s.report for p, s in choose_submissions(report, register, Period.parse(quarter))[1].items()} if quarter else {}
    other_quarters: dict[str, list] = {}
    for fr in report.files:
        if fr.portfolio and period_key(fr.period) != quarter:
            other_quarters.setdefault(fr.portfolio, []).append(fr)
    rows = []
    for portfolio in register.portfolios:
        items = register.for_portfolio(portfolio)
        got = files.get(portfolio, [])
        got_text = "; ".join(fr.workbook for fr in got)
        counts = None  # the file the row's errors and warnings are those of
        if not got:
            status, action = "not returned", f"Send {the_return}."
            stale = [fr for fr in other_quarters.get(portfolio, ()) if fr.period]
            if stale:
                sent = "; ".join(f"{fr.workbook} is the {Period.parse(fr.period).label} template" if period_key(fr.period) else fr.workbook for fr in stale)
                action = f"Sent the wrong quarter's return ({sent}); send {the_return}, made from its template (derbyxl migrate carries the answers over)."
                got_text = "; ".join(fr.workbook for fr in stale)
        elif portfolio not in used:
            status = "errors"
            counts = min(got, key=lambda fr: (fr.errors, fr.workbook))
            first = next(f for f in counts.findings if f.severity == ERROR)
            where = "!".join(x for x in (first.sheet, first.cell) if x)
            action = f"Fix {counts.errors} error(s) in {counts.workbook} and send it again; the first: {where + ' ' if where else ''}{first.message}"
        else:
            status, counts = "valid", used[portfolio]
            action = "Nothing to do" + (f" ({counts.workbook} is the one used)" if len(got) > 1 else "")
            action += f"; {counts.warnings} warning(s) to look at." if counts.warnings else "."
        rows.append(
            {
                "portfolio": portfolio,
                "status": status,
                "lead_officers": "; ".join(sorted({i.lead_officer for i in items if i.lead_officer})),
                "emails": "; ".join(sorted({i.email for i in items if i.email})),
                "files": got_text,
                "errors": counts.errors if counts else 0,
                "warnings": counts.warnings if counts else 0,
                "action": action,
            }
        )
    return sorted(rows, key=lambda r: STATUSES.index(r["status"]))


def write_chase_csv(rows: list[dict], path: str | Path) -> int:
    """Write :func:`quarter_status`'s rows as CSV (UTF-8 with a BOM, for Excel), text that a
    spreadsheet would run as a formula behind an apostrophe; returns the rows written."""
    ensure_folder(Path(path).parent)
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh)
        w.writerow(CAPTIONS)
        for row in rows:
            w.writerow(["'" + v if looks_like_formula(v) else v for v in (row[c] for c in COLUMNS)])
    return len(rows)

