"""The master workbook of a quarter, written with xlsxwriter.

Sheets: Summary (per theme and portfolio, with a chart), one sheet per portfolio laid out like
the council's published tables, Exceptions (Red and Amber), Submissions, and Data (one flat row
per item in an Excel table, for pivot tables).

Status colours are conditional formats keyed on the status text (one rule per colour), so a
colour follows the value if someone edits it. All text from returns is written with
``write_string``: commentary such as ``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from pathlib import Path

from xlsxwriter.utility import xl_range

from derbyxl import __version__, rag
from derbyxl.bulk import RowRenderer, Splicer, style_index
from derbyxl.periods import Period, uk_time
from derbyxl.register import Register
from derbyxl.summary import STATUSES, by_group, summarise
from derbyxl.values import NUMBER_FORMATS
from derbyxl.record import DATA_COLUMNS, Record
from derbyxl.xlsx_util import Workbook, row_height, write_number, write_text

DOT_SYMBOL = {rag.IMPROVING: "\u25b2 Improving", rag.SAME: "\u25ba Same", rag.DETERIORATING: "\u25bc Deteriorating"}
STATUS_RULES = (rag.BLUE, rag.GREEN, rag.GREEN_AMBER, rag.AMBER, rag.AMBER_RED, rag.RED, rag.NO_TARGET, rag.NO_RETURN)
KIND_TITLES = (("action", "Actions identified in the Delivery Plan"), ("measure", "Delivery Plan measures"), ("project", "Priority projects"), ("risk", "Strategic risks"))


def master_filename(period: Period) -> str:
    return f"master_{period.key}.xlsx"


def sheet_name(name: str, taken: set[str]) -> str:
    """A valid, unique sheet name (31 characters, none of []:*?/\\), shortened at a word
    boundary: "Children, Young People and Skills" is the tab "Children, Young People", not
    "Children, Young People and Skil"."""
    clean = "".join("-" if ch in "[]:*?/\\" else ch for ch in name).strip("'") or "Sheet"
    base = _shortened(clean, 31)
    out, n = base, 2
    lowered = {t.lower() for t in taken}
    while out.lower() in lowered:
        suffix = f" ({n})"
        out = _shortened(clean, 31 - len(suffix)) + suffix
        n += 1
    taken.add(out)
    return out


_DANGLING = re.compile(r"(?:[\s,;&-]+|\s+(?:and|or|of|the|for|to|in))+$", re.IGNORECASE)


def _shortened(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at the last whole word, without a word
    such as "and" or a comma left hanging at the end (cut mid-word only when one word is
    longer than the limit)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > 0 else text[:limit]
    return _DANGLING.sub("", cut) or text[:limit].rstrip()


class _Formats:
    def __init__(self, wb):
        self.wb = wb
        self.header = wb.add_format({"bold": True, "font_color": "#FFFFFF", "bg_color": "#1F3864", "text_wrap": True, "valign": "top", "border": 1})
        self.title = wb.add_format({"bold": True, "font_size": 16, "font_color": "#1F3864"})
        self.section = wb.add_format({"bold": True, "bg_color": "#D9E1F2", "border": 1})
        self.text = wb.add_format({"text_wrap": True, "valign": "top", "border": 1, "border_color": "#BFBFBF"})
        self.plain = wb.add_format({"valign": "top", "border": 1, "border_color": "#BFBFBF"})
        self.pct = wb.add_format({"num_format": "0%", "border": 1, "border_color": "#BFBFBF"})
        self.int = wb.add_format({"num_format": "#,##0", "border": 1, "border_color": "#BFBFBF"})
        self.total = wb.add_format({"bold": True, "num_format": "#,##0", "top": 2})
        self.total_pct = wb.add_format({"bold": True, "num_format": "0%", "top": 2})
        self.total_text = wb.add_format({"bold": True, "top": 2})
        self.note = wb.add_format({"italic": True, "font_color": "#595959"})
        self.status = {
            s: wb.add_format({"bg_color": c, "font_color": rag.STATUS_FONT.get(s, "#000000"), "bold": True})
            for s, c in rag.STATUS_COLOURS.items()
        }
        # The same colours as header cells: bold, wrapped, at the top, bordered.
        self.status_header = {
            s: wb.add_format({"bg_color": c, "font_color": rag.STATUS_FONT.get(s, "#000000"), "bold": True, "text_wrap": True, "valign": "top", "border": 1})
            for s, c in rag.STATUS_COLOURS.items()
        }
        self.dot_up = wb.add_format({"font_color": "#2E7D32"})
        self.dot_down = wb.add_format({"font_color": "#C62828"})
        self._units = {}

    def unit(self, unit):
        key = unit or "number"
        if key not in self._units:
            self._units[key] = self.wb.add_format({"num_format": NUMBER_FORMATS.get(key, "General"), "valign": "top", "border": 1, "border_color": "#BFBFBF"})
        return self._units[key]


def _status_rules(ws, f: _Formats, first_row: int, last_row: int, col: int):
    if last_row < first_row:
        return
    for s in STATUS_RULES:
        ws.conditional_format(first_row, col, last_row, col, {"type": "cell", "criteria": "==", "value": f'"{s}"', "format": f.status[s]})


def _dot_rules(ws, f: _Formats, first_row: int, last_row: int, col: int):
    if last_row < first_row:
        return
    ws.conditional_format(first_row, col, last_row, col, {"type": "text", "criteria": "containing", "value": "Improving", "format": f.dot_up})
    ws.conditional_format(first_row, col, last_row, col, {"type": "text", "criteria": "containing", "value": "Deteriorating", "format": f.dot_down})


def _print(ws, title: str, landscape=True, repeat: int | None = 0):
    if landscape:
        ws.set_landscape()
    ws.set_paper(9)
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    if repeat is not None:
        ws.repeat_rows(repeat)
    ws.set_header(f"&L&8{title.replace('&', '&&')}&R&8&A")
    ws.set_footer("&L&8derbyxl master&RPage &P of &N")


def _shown(row: dict, key: str) -> tuple[object, bool]:
    """What an Actual/Target/Previous cell shows, and whether it is a number (in the row's
    unit): numbers for measures, words for the others and for a measure without a value."""
    v = row.get(key)
    if row["kind"] == "measure":
        if v is not None:
            return v, True
        if key == "actual" and row.get("note"):
            return row["note"], False
        return ("No target" if key == "target" else None), False
    if key == "actual":
        return row.get("status_word"), False
    return ("N/A" if key == "target" else None), False


def _value(ws, f, r, c, row, key):
    """Write Actual/Target/Previous with xlsxwriter (see :func:`_shown`)."""
    v, number = _shown(row, key)
    if number:
        return write_number(ws, r, c, v, f.unit(row.get("unit")))
    return write_text(ws, r, c, v, f.plain)


#: Above this many portfolios the master has no sheet per portfolio (filter Data instead).
MAX_PORTFOLIO_SHEETS = 50


def _created(generated_at: str) -> dt.datetime | None:
    """The master's creation time in UTC, from the result's stamp (None: xlsxwriter's clock)."""
    try:
        return dt.datetime.fromisoformat(generated_at).astimezone(dt.timezone.utc)
    except (TypeError, ValueError):
        return None


def write_master(path: str | Path, register: Register, result) -> None:
    """Write the master workbook of a consolidation result to ``path``."""
    period: Period = result.period
    rows = result.rows
    splicer = Splicer()
    wb = Workbook(splicer.buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False})
    wb.set_properties(
        {
            "title": f"Performance master {period.label}",
            "subject": f"Quarterly performance {period.label}",
            "author": "derbyxl",
            "keywords": f"performance, {period.key}",
            "comments": f"Generated by derbyxl {__version__} at {result.generated_at}",
            # The stamped time, not the clock's: the same inputs give the same bytes.
            "created": _created(result.generated_at),
        }
    )
    wb.set_custom_property("Period", period.label)
    wb.set_custom_property("Generated at", result.generated_at)
    f = _Formats(wb)
    taken: set[str] = set()
    _summary(wb, f, register, result, sheet_name("Summary", taken))
    if len(register.portfolios) <= MAX_PORTFOLIO_SHEETS:
        by_portfolio: dict[str, list[Record]] = {p: [] for p in register.portfolios}
        for row in rows:
            by_portfolio[row["portfolio"]].append(row)
        for portfolio, group in by_portfolio.items():
            _portfolio_sheet(wb, f, portfolio, group, period, sheet_name(portfolio, taken))
    if result.trend_periods:
        _trends(wb, f, register, result, sheet_name("Trends", taken))
    _exceptions(wb, f, rows, period, sheet_name("Exceptions", taken), splicer)
    _submissions(wb, f, result, sheet_name("Submissions", taken))
    _data(wb, f, result, sheet_name("Data", taken), splicer)
    wb.close()
    splicer.save(path)


#: The Summary's group tables: (caption, what a row holds), in column order after the group's name.
_KIND_CAPTIONS = (("measure", "Measures"), ("action", "Actions"), ("project", "Projects"), ("risk", "Risks"))
_SHARES = (
    ("% measures meeting target", "pct_meeting_target", "rated", "measures with a target and a value"),
    ("% measures improved on last year", "pct_improved", "compared", "measures compared with the same quarter last year"),
    ("% actions delivered or on track", "pct_actions_on_track", "actions", "actions with a status"),
    ("% projects Green or Green/Amber", "pct_projects_green", "projects", "projects with a status"),
)
_STATUS_NOTE = (
    "Blue, Green, Amber and Red follow the KEY: measures against target, actions Completed (Blue), On track, "
    "Some slippage (Amber), Major slippage (Red); projects as assessed; risks by score (1-4 Green, 6-9 Amber, "
    "12-16 Red). No return: the portfolio has sent no valid return yet."
)


def _summary(wb, f, register, result, name):
    """The Summary: every item's status by kind (No return a status of its own), then per theme
    and per portfolio the counts the council publishes, the status of every item, and each
    headline percentage beside what it is out of."""
    ws = wb.add_worksheet(name)
    ws.activate()
    period, rows = result.period, result.rows
    ws.write_string(0, 0, f"Performance summary {period.label}", f.title)
    returned = len({s.report.portfolio for s in result.submissions if s.used})
    ws.write_string(1, 0, f"{returned} of {len(register.portfolios)} portfolios returned a valid return. Generated {uk_time(result.generated_at)}.", f.note)
    if result.missing:
        shown = result.missing[:20]
        more = f" and {len(result.missing) - len(shown)} more (see Submissions)" if len(result.missing) > len(shown) else ""
        ws.write_string(2, 0, "Missing or invalid: " + "; ".join(shown) + more, f.note)
    if len(register.portfolios) > MAX_PORTFOLIO_SHEETS:
        ws.write_string(3, 0, f"{len(register.portfolios)} portfolios: filter the Data sheet by Portfolio for one portfolio's items.", f.note)
    everything = summarise(rows, "All")
    n_status = len(STATUSES)
    widths = [46, 9, 8, 8, 7] + [8] * n_status + [11, 7] * len(_SHARES)
    for c, w in enumerate(widths):
        ws.set_column(c, c, w)
    # Every item by kind and status.
    r = 5
    ws.write_string(r, 0, "Every item, by kind and status", f.header)
    for c in range(1, 5):
        ws.write_blank(r, c, None, f.header)
    for c, s in enumerate(STATUSES):
        ws.write_string(r, 5 + c, s, f.status_header[s])
    ws.write_string(r, 5 + n_status, "Total", f.header)
    ws.set_row(r, 30)
    for kind, caption in _KIND_CAPTIONS:
        r += 1
        write_text(ws, r, 0, caption, f.plain)
        for c, s in enumerate(STATUSES):
            ws.write_number(r, 5 + c, everything.by_kind[kind][s], f.int)
        ws.write_number(r, 5 + n_status, everything.counts[kind], f.int)
    r += 1
    write_text(ws, r, 0, "All items", f.total_text)
    for c, s in enumerate(STATUSES):
        ws.write_number(r, 5 + c, everything.status[s], f.total)
    ws.write_number(r, 5 + n_status, sum(everything.counts.values()), f.total)
    r += 1
    ws.write_string(r, 0, _STATUS_NOTE, f.note)
    r += 2
    headers = ["", *(c for _, c in _KIND_CAPTIONS), *STATUSES]
    for caption, _, _, _ in _SHARES:
        headers += [caption, "out of"]
    chart_rows = {}
    for label, key, order in (("Theme", "theme", register.themes), ("Portfolio", "portfolio", register.portfolios)):
        headers[0] = label
        for c, h in enumerate(headers):
            ws.write_string(r, c, h, f.status_header[h] if h in STATUSES else f.header)
        ws.set_row(r, 45)
        header_row = r
        first = r + 1
        for g in by_group(rows, key, order):
            r += 1
            _summary_row(ws, f, r, g, label_fmt=f.plain, num=f.int, pct=f.pct)
        chart_rows[key] = (header_row, first, r)
        r += 1
        _summary_row(ws, f, r, everything, label_fmt=f.total_text, num=f.total, pct=f.total_pct)
        r += 3
    ws.write_string(r - 2, 0, "Each percentage is out of the number beside it; '-' where there is nothing to count.", f.note)
    ws.freeze_panes(0, 1)
    header_row, first, last = chart_rows["theme"]
    chart = wb.add_chart({"type": "bar", "subtype": "stacked"})
    for s in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED, rag.NO_RETURN):
        col = 5 + STATUSES.index(s)
        chart.add_series(
            {
                "name": [name, header_row, col],
                "categories": [name, first, 0, last, 0],
                "values": [name, first, col, last, col],
                "fill": {"color": rag.STATUS_COLOURS[s]},
                "border": {"color": "#FFFFFF"},
                "gap": 60,
            }
        )
    chart.set_title({"name": "Items by status and theme"})
    chart.set_x_axis({"num_format": "0", "major_unit": _whole_unit(max((sum(g.status.values()) for g in by_group(rows, "theme", register.themes)), default=1))})
    chart.set_y_axis({"reverse": True})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 620, "height": 300})
    ws.insert_chart(r, 0, chart)
    _print(ws, f"Performance summary {period.label}", repeat=None)


def _whole_unit(largest: int) -> int:
    """A whole-number step for an axis running to ``largest``: about five to ten ticks."""
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if largest / step <= 10:
            return step
    return max(1, largest // 10)


def _summary_row(ws, f, r, g, label_fmt, num, pct):
    write_text(ws, r, 0, g.name, label_fmt)
    for c, (kind, _) in enumerate(_KIND_CAPTIONS):
        ws.write_number(r, 1 + c, g.counts[kind], num)
    for c, s in enumerate(STATUSES):
        ws.write_number(r, 5 + c, g.status[s], num)
    c = 5 + len(STATUSES)
    for _, share, out_of, _ in _SHARES:
        v = getattr(g, share)
        if v is None:
            ws.write_string(r, c, "-", label_fmt)
        else:
            ws.write_number(r, c, v, pct)
        ws.write_number(r, c + 1, getattr(g, out_of), num)
        c += 2


PORTFOLIO_COLUMNS = (
    ("Ref", 13),
    ("Description", 52),
    ("Previous actual", 13),
    ("Actual", 14),
    ("Status", 12),
    ("Target", 12),
    ("DoT (short term)", 15),
    ("DoT (year on year)", 15),
    ("Theme", 17),
    ("Commentary", 50),
)


def _portfolio_sheet(wb, f, portfolio, rows, period, name):
    ws = wb.add_worksheet(name)
    for c, (h, w) in enumerate(PORTFOLIO_COLUMNS):
        ws.set_column(c, c, w)
        ws.write_string(0, c, h, f.header)
    ws.set_row(0, 30)
    r = 0
    status_ranges = []
    for kind, title in KIND_TITLES:
        group = [row for row in rows if row["kind"] == kind]
        if not group:
            continue
        r += 1
        ws.merge_range(r, 0, r, len(PORTFOLIO_COLUMNS) - 1, f"{title} {period.year_label}", f.section)
        start = r + 1
        for row in group:
            r += 1
            write_text(ws, r, 0, row["ref"], f.plain)
            write_text(ws, r, 1, row["description"], f.text)
            _value(ws, f, r, 2, row, "previous_actual")
            _value(ws, f, r, 3, row, "actual")
            write_text(ws, r, 4, row["status"], f.plain)
            _value(ws, f, r, 5, row, "target")
            write_text(ws, r, 6, DOT_SYMBOL.get(row.get("dot_short"), "N/A" if kind != "measure" else ""), f.plain)
            write_text(ws, r, 7, DOT_SYMBOL.get(row.get("dot"), "N/A" if kind != "measure" else ""), f.plain)
            write_text(ws, r, 8, row["theme"], f.plain)
            write_text(ws, r, 9, row.get("commentary"), f.text)
            h = row_height([(row["description"], 52), (row.get("commentary"), 50)])
            if h:
                ws.set_row(r, h)
        status_ranges.append((start, r))
    for start, end in status_ranges:
        _status_rules(ws, f, start, end, 4)
        _dot_rules(ws, f, start, end, 6)
        _dot_rules(ws, f, start, end, 7)
    ws.freeze_panes(1, 1)
    ws.autofilter(0, 0, max(r, 1), len(PORTFOLIO_COLUMNS) - 1)
    _print(ws, f"{portfolio} - {period.label}")


def _trends(wb, f, register, result, name):
    """Each measure's actual over the last recorded quarters, coloured by its status then, with
    a sparkline (native to Excel; LibreOffice shows the numbers and colours)."""
    ws = wb.add_worksheet(name)
    labels = [Period.parse(p).label for p in result.trend_periods]
    headers = ["Ref", "Description", "Unit", *labels, "Trend"]
    widths = [14, 50, 9, *([11] * len(labels)), 18]
    for c, (h, w) in enumerate(zip(headers, widths)):
        ws.set_column(c, c, w)
        ws.write_string(0, c, h, f.header)
    ws.set_row(0, 30)
    first, last = 3, 3 + len(labels) - 1
    styles: dict[tuple, object] = {}

    def style(unit, status):
        key = (unit or "number", status)
        if key not in styles:
            spec = {"num_format": NUMBER_FORMATS.get(key[0], "General"), "border": 1, "border_color": "#BFBFBF"}
            if status in rag.STATUS_COLOURS:
                spec.update({"bg_color": rag.STATUS_COLOURS[status], "font_color": rag.STATUS_FONT.get(status, "#000000")})
            styles[key] = wb.add_format(spec)
        return styles[key]

    r = 0
    items = register.by_ref
    for ref, series in result.trends.items():
        item = items[ref]
        r += 1
        write_text(ws, r, 0, ref, f.plain)
        write_text(ws, r, 1, item.description, f.plain)
        write_text(ws, r, 2, item.unit, f.plain)
        for c, point in enumerate(series, start=first):
            if point is None or point[0] is None:
                ws.write_blank(r, c, None, style(item.unit, point[1] if point else None))
            else:
                write_number(ws, r, c, point[0], style(item.unit, point[1]))
        ws.add_sparkline(r, last + 1, {"range": f"'{name}'!{xl_range(r, first, r, last)}", "markers": True, "series_color": "#1F3864"})
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, max(r, 1), len(headers) - 1)
    _print(ws, f"Trends - {result.period.label}")


def _exceptions(wb, f, rows, period, name, splicer: Splicer):
    ws = wb.add_worksheet(name)
    cols = (("Portfolio", 30), ("Ref", 13), ("Kind", 9), ("Description", 45), ("Status", 12), ("Actual", 13), ("Target", 12), ("Commentary", 60))
    for c, (h, w) in enumerate(cols):
        ws.set_column(c, c, w)
        ws.write_string(0, c, h, f.header)
    order = {rag.RED: 0, rag.AMBER_RED: 1, rag.AMBER: 2}
    picked = sorted((row for row in rows if row["status"] in order), key=lambda row: (order[row["status"]], row["portfolio"], row["ref"]))
    if not picked:
        ws.write_string(1, 0, "No Red or Amber items this quarter.", f.note)
    last = max(len(picked), 1)
    _status_rules(ws, f, 1, last, 4)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, last, len(cols) - 1)
    _print(ws, f"Exceptions - {period.label}")
    if picked:
        text, plain = style_index(f.text), style_index(f.plain)
        styles = (text, plain, plain, text, plain, None, None, text)
        units = _unit_styles(f, picked)

        def xml():
            render = RowRenderer(len(cols))
            for r, row in enumerate(picked, start=1):
                actual, a_style = _cell_value(row, "actual", units, plain)
                target, t_style = _cell_value(row, "target", units, plain)
                values = (row["portfolio"], row["ref"], row["kind"], row["description"], row["status"], actual, target, row.get("commentary"))
                h = row_height([(row["description"], 45), (row.get("commentary"), 60), (row["portfolio"], 30)])
                yield render.row(r, values, styles[:5] + (a_style, t_style) + styles[7:], h)

        splicer.add(ws, xml, last, len(cols) - 1)


def _unit_styles(f, rows) -> dict[str, int]:
    """Style indices of the number formats the rows' units need, registered now: the rows
    are rendered after xlsxwriter has written styles.xml, so no style can be added then."""
    units = {row.get("unit") or "number" for row in rows if row["kind"] == "measure"}
    return {u: style_index(f.unit(u)) for u in sorted(units)}


def _cell_value(row, key, units: dict, plain: int):
    """What :func:`_value` writes, as (value, style index) for a streamed row."""
    v, number = _shown(row, key)
    return v, (units[row.get("unit") or "number"] if number else plain)


def _submissions(wb, f, result, name):
    ws = wb.add_worksheet(name)
    cols = (("Portfolio", 30), ("File", 40), ("SHA-256", 20), ("Received", 20), ("Signed off by", 18), ("Signed date", 11), ("Valid", 7), ("Errors", 7), ("Warnings", 9), ("Used", 28))
    for c, (h, w) in enumerate(cols):
        ws.set_column(c, c, w)
        ws.write_string(0, c, h, f.header)
    r = 0
    for s in sorted(result.submissions, key=lambda s: (s.report.portfolio or "~", s.report.workbook)):
        fr = s.report
        r += 1
        for c, v in enumerate((fr.portfolio or "(unknown)", fr.workbook, fr.sha256, s.received, fr.signed_by, fr.signed_date, "Yes" if fr.valid else "No")):
            write_text(ws, r, c, v, f.plain)
        ws.write_number(r, 7, fr.errors, f.int)
        ws.write_number(r, 8, fr.warnings, f.int)
        write_text(ws, r, 9, s.note, f.plain)
    for p in result.missing:
        r += 1
        write_text(ws, r, 0, p, f.plain)
        write_text(ws, r, 1, "no valid return", f.plain)
        write_text(ws, r, 9, "MISSING", f.status[rag.RED])
    ws.conditional_format(1, 6, max(r, 1), 6, {"type": "cell", "criteria": "==", "value": '"No"', "format": f.status[rag.RED]})
    ws.freeze_panes(1, 1)
    ws.autofilter(0, 0, max(r, 1), len(cols) - 1)
    _print(ws, f"Submissions - {result.period.label}")


def _data(wb, f, result, name, splicer: Splicer):
    rows = result.rows
    ws = wb.add_worksheet(name)
    for c, (_, _, w) in enumerate(DATA_COLUMNS):
        ws.set_column(c, c, w)
    last = max(len(rows), 1)
    ncols = len(DATA_COLUMNS)
    ws.add_table(0, 0, 1, ncols - 1, {"name": "PerformanceData", "style": "Table Style Light 9", "columns": [{"header": h, "header_format": f.header} for h, _, _ in DATA_COLUMNS]})
    ws.set_row(0, 45)  # three lines: the longer captions wrap so in their narrow columns
    splicer.resize_table("PerformanceData", xl_range(0, 0, 1, ncols - 1), xl_range(0, 0, last, ncols - 1))
    _status_rules(ws, f, 1, last, [k for _, k, _ in DATA_COLUMNS].index("status"))
    ws.freeze_panes(1, 1)
    _print(ws, "Data")
    ws.set_paper(8)  # A3: its columns on one page's width stay readable (A4 for the others)
    keys = [k for _, k, _ in DATA_COLUMNS]
    numeric = [keys.index(k) for k in ("actual", "target", "previous_actual")]
    score = keys.index("score")
    unit_styles = _unit_styles(f, rows)
    int_style = style_index(f.int)
    plain = [0] * len(keys)
    plain[score] = int_style
    by_unit = {}
    for unit, style in unit_styles.items():
        styles = list(plain)
        for c in numeric:
            styles[c] = style
        by_unit[unit] = styles
    # Every row is of the quarter: its Period cell is the same, not set on each record.
    at_period = keys.index("period")
    pick = operator.attrgetter(*(k for k in keys if k != "period"))
    period_key = result.period.key

    def xml():
        render = RowRenderer(len(keys))
        for r, row in enumerate(rows, start=1):
            values = list(pick(row))
            values.insert(at_period, period_key)
            if row.kind == "measure":
                styles = by_unit[row.unit or "number"]
            else:
                styles = plain
                for c in numeric:  # words for actions, projects and risks
                    if values[c] is not None and values[c].__class__ is not str:
                        values[c] = str(values[c])
            yield render.row(r, values, styles)

    splicer.add(ws, xml, last, len(keys) - 1)
