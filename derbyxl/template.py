"""Return templates: one workbook per portfolio, written with xlsxwriter from :mod:`derbyxl.spec`.

Each template has a Cover (what to do, the colour KEY, sign-off), one sheet per kind of item
present, and a very hidden stamp sheet saying what the workbook is. Read-only cells are locked,
input cells unlocked and shaded, and sheets protected (no password unless one is given) while
still allowing sort and filter.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import xlsxwriter
from xlsxwriter.utility import xl_rowcol_to_cell

from derbyxl import __version__, rag
from derbyxl.baseline import baseline
from derbyxl.periods import Period, long_date
from derbyxl.register import Item, Register
from derbyxl.spec import (
    ACTUAL_PROMPTS,
    COVER_PERIOD_CELL,
    COVER_SHEET,
    FORMAT_VERSION,
    LONG_TEXT,
    MAX_TEXT,
    SIGN_OFF,
    STAMP_SHEET,
    SheetSpec,
    Stamp,
    kinds_present,
    template_filename,
)
from derbyxl.values import NUMBER_FORMATS
from derbyxl.runner import Failed, kept
from derbyxl.xlsx_util import Workbook, atomic_path, ensure_folder, row_height, write_number, write_text

INPUT_FILL = "#FFF9DB"
HEADER_FILL = "#1F3864"
ACTION_COLOURS = {
    "Completed": rag.BLUE,
    "On track": rag.GREEN,
    "Some slippage": rag.AMBER,
    "Major slippage": rag.RED,
}
STEPS = (
    "Go through each sheet (tabs at the bottom). Only the shaded cells can be typed in.",
    "Measures: type the actual for the period as a number (percentages with the % sign, e.g. 7.4%); the Status preview colours itself.",
    "Actions and Projects: pick a status from the drop-down. Risks: pick likelihood and impact 1-4.",
    "Write commentary for every Amber or Red item and for any measure without data (say why in Note).",
    "Fill in the sign-off below, save the file without renaming its sheets, and send it back.",
)


@dataclass
class TemplateInfo:
    """What :func:`write_template` wrote."""

    path: Path
    portfolio: str
    counts: dict[str, int]


class _Formats:
    """xlsxwriter formats, created once per workbook and shared between sheets."""

    def __init__(self, wb: xlsxwriter.Workbook):
        self.wb = wb
        self._cache: dict[tuple, object] = {}
        self.header = wb.add_format(
            {"bold": True, "font_color": "#FFFFFF", "bg_color": HEADER_FILL, "text_wrap": True, "valign": "top", "border": 1, "locked": True}
        )
        self.title = wb.add_format({"bold": True, "font_size": 16, "font_color": HEADER_FILL})
        self.heading = wb.add_format({"bold": True, "font_size": 12, "font_color": HEADER_FILL})
        self.label = wb.add_format({"bold": True, "valign": "top"})
        self.text = wb.add_format({"text_wrap": True, "valign": "top"})
        self.status = {
            s: wb.add_format({"bg_color": colour, "font_color": rag.STATUS_FONT.get(s, "#000000"), "bold": True})
            for s, colour in rag.STATUS_COLOURS.items()
        }

    def cell(self, *, unit: str | None = None, input: bool = False, wrap: bool = False, date: bool = False):
        key = (unit, input, wrap, date)
        if key not in self._cache:
            props = {"valign": "top", "border": 1, "border_color": "#BFBFBF", "locked": not input}
            if unit:
                props["num_format"] = NUMBER_FORMATS[unit]
            if date:
                props["num_format"] = "dd/mm/yyyy"
            if wrap:
                props["text_wrap"] = True
            if input:
                props["bg_color"] = INPUT_FILL
                props["border_color"] = "#B7A100"
            self._cache[key] = self.wb.add_format(props)
        return self._cache[key]


def _protect(ws, password: str | None):
    # Sorting and filtering stay allowed; Excel still refuses to sort locked cells, so officers
    # can filter freely and sort by an input column.
    ws.protect(
        password or "",
        {
            "sort": True,
            "autofilter": True,
            "format_columns": True,
            "format_rows": True,
            "select_locked_cells": True,
            "select_unlocked_cells": True,
        },
    )


def _print_setup(ws, title: str, repeat_header: bool = True):
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
    if repeat_header:
        ws.repeat_rows(0)
    ws.set_header(f"&L&8{title.replace('&', '&&')}&R&8&A")
    ws.set_footer("&L&8derbyxl return&RPage &P of &N")


def _validation(spec: SheetSpec, col, item: Item) -> dict:
    title = col.caption[:32]
    if col.dtype == "number":
        lo, hi = item.bounds
        opts = {
            "validate": "decimal",
            "criteria": "between",
            "minimum": -1e15 if lo is None else lo,
            "maximum": 1e15 if hi is None else hi,
        }
        prompt = ACTUAL_PROMPTS.get(item.unit or "number", ACTUAL_PROMPTS["number"]) + " " + col.prompt
        if lo is not None or hi is not None:
            rng = "between {} and {}".format(
                "any" if lo is None else _shown(lo, item.unit), "any" if hi is None else _shown(hi, item.unit)
            )
            error = f"Type a number {rng}."
        else:
            error = "Type a number, without units or words."
    elif col.dtype == "whole":
        opts = {"validate": "integer", "criteria": "between", "minimum": col.minimum, "maximum": col.maximum}
        prompt = col.prompt
        error = f"Type a whole number from {col.minimum} to {col.maximum}."
    elif col.dtype == "choice":
        opts = {"validate": "list", "source": list(col.choices)}
        prompt = col.prompt
        error = "Pick a value from the list: " + ", ".join(col.choices)
    else:
        opts = {"validate": "length", "criteria": "<=", "value": MAX_TEXT}
        prompt = col.prompt
        error = f"Text can be at most {MAX_TEXT} characters; keep it under {LONG_TEXT} to print well."
    opts.update(
        {
            "input_title": title,
            "input_message": prompt[:255],
            "error_title": col.caption[:32],
            "error_message": error[:255],
            "error_type": "stop",
            "ignore_blank": True,
        }
    )
    return opts


def _add_validations(ws, by_column: dict[int, list[tuple[int, dict]]]) -> None:
    """One data validation per run of consecutive rows that share the same rule: a few per
    column rather than one per cell, which keeps the file small and quick to write."""
    for c, cells in by_column.items():
        start = 0
        for i in range(1, len(cells) + 1):
            if i == len(cells) or cells[i][1] != cells[start][1] or cells[i][0] != cells[i - 1][0] + 1:
                ws.data_validation(cells[start][0], c, cells[i - 1][0], c, cells[start][1])
                start = i


def _shown(value: float, unit: str | None) -> str:
    if unit == "percent":
        return f"{value * 100:g}%"
    return f"{value:g}"


def _write_kind_sheet(wb, f: _Formats, spec: SheetSpec, items: list[Item], period: Period, previous: Mapping[str, tuple[str, float]], title: str, password, answers=None):
    ws = wb.add_worksheet(spec.name)
    for c, col in enumerate(spec.columns):
        ws.set_column(c, c, col.width)
        ws.write_string(0, c, col.caption, f.header)
    ws.set_row(0, 30)
    cols = {col.key: i for i, col in enumerate(spec.columns)}
    validations: dict[int, list[tuple[int, dict]]] = {}
    for r, item in enumerate(items, start=1):
        texts = []
        target = item.target_for(period.quarter)
        for c, col in enumerate(spec.columns):
            if col.key == "ref":
                write_text(ws, r, c, item.ref, f.cell(wrap=True))
            elif col.key == "description":
                write_text(ws, r, c, item.description, f.cell(wrap=True))
                texts.append((item.description, col.width))
            elif col.key == "unit":
                write_text(ws, r, c, item.unit, f.cell())
            elif col.key == "polarity":
                write_text(ws, r, c, item.polarity, f.cell())
            elif col.key == "target":
                if target is None:
                    write_text(ws, r, c, None, f.cell(unit=item.unit))
                else:
                    write_number(ws, r, c, target, f.cell(unit=item.unit))
            elif col.key == "previous":
                earlier = baseline(item, period, previous)
                write_number(ws, r, c, earlier.value if earlier else None, f.cell(unit=item.unit))
            elif col.key == "preview":
                a = xl_rowcol_to_cell(r, cols["actual"])
                t = xl_rowcol_to_cell(r, cols["target"])
                formula = rag.measure_status_formula(a, t, item.polarity, item.tolerances)
                cached = rag.measure_status(None, target, item.polarity or "higher", item.tolerances)
                ws.write_formula(r, c, formula, f.cell(), cached)
            elif col.key == "score":
                li = xl_rowcol_to_cell(r, cols["likelihood"])
                im = xl_rowcol_to_cell(r, cols["impact"])
                ws.write_formula(r, c, f'=IF(AND(ISNUMBER({li}),ISNUMBER({im})),{li}*{im},"")', f.cell(), "")
            elif col.role == "input":
                unit = item.unit if col.dtype == "number" else None
                fmt = f.cell(unit=unit, input=True, wrap=col.dtype == "text")
                value = (answers or {}).get(item.ref, {}).get(col.key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    ws.write_number(r, c, value, fmt)
                else:
                    write_text(ws, r, c, value, fmt)
                validations.setdefault(c, []).append((r, _validation(spec, col, item)))
        height = row_height(texts)
        if height:
            ws.set_row(r, height)
    _add_validations(ws, validations)
    last = len(items)
    ws.freeze_panes(1, 2)
    ws.autofilter(0, 0, last, len(spec.columns) - 1)
    _status_colours(ws, f, spec, last)
    _print_setup(ws, title)
    _protect(ws, password)
    return ws


def _status_colours(ws, f: _Formats, spec: SheetSpec, last: int):
    """One conditional format per colour, so the fill follows whatever is typed."""
    if last < 1:
        return
    if spec.kind == "measure":
        c = spec.index("preview")
        rules = {s: s for s in (rag.BLUE, rag.GREEN, rag.AMBER, rag.RED, rag.NO_TARGET)}
    elif spec.kind == "action":
        c = spec.index("status")
        rules = ACTION_COLOURS
    elif spec.kind == "project":
        c = spec.index("status")
        rules = {s: s for s in rag.PROJECT_STATUSES}
    else:
        c = spec.index("score")
        for low, high, colour in rag.RISK_BANDS:
            ws.conditional_format(1, c, last, c, {"type": "cell", "criteria": "between", "minimum": low, "maximum": high, "format": f.status[colour]})
        return
    for word, colour in rules.items():
        ws.conditional_format(
            1, c, last, c, {"type": "cell", "criteria": "==", "value": f'"{word}"', "format": f.status[colour]}
        )


def _write_cover(wb, f: _Formats, register: Register, portfolio: str, period: Period, items: list[Item], contact: str, password, due: dt.date | None = None):
    ws = wb.add_worksheet(COVER_SHEET)
    ws.set_column(0, 0, 3)
    ws.set_column(1, 1, 22)
    ws.set_column(2, 2, 70)
    ws.set_column(3, 3, 30)
    ws.hide_gridlines(2)
    ws.write_string(0, 1, f"Quarterly performance return: {period.label}", f.title)
    counts = {s.name: sum(1 for i in items if i.kind == s.kind) for s in kinds_present(items)}
    info = [
        ("Portfolio", portfolio),
        ("Period", f"{period.label} ({period.start:%d %B %Y} to {period.end:%d %B %Y})"),
        ("Due date", long_date(due or period.due_date())),
        ("Contact", contact),
        ("Items", ", ".join(f"{n} {name.lower()}" for name, n in counts.items())),
    ]
    for r, (label, value) in enumerate(info, start=2):
        if label == "Period" and f"C{r + 1}" != COVER_PERIOD_CELL:
            raise AssertionError("the Cover's period row moved: update spec.COVER_PERIOD_CELL")
        ws.write_string(r, 1, label, f.label)
        write_text(ws, r, 2, value, f.text)
        if row_height([(value, 70)]):
            ws.set_row(r, row_height([(value, 70)]))
    ws.write_string(8, 1, "What to do", f.heading)
    for i, step in enumerate(STEPS):
        ws.write_string(9 + i, 1, f"Step {i + 1}", f.label)
        ws.write_string(9 + i, 2, step, f.text)
        ws.set_row(9 + i, row_height([(step, 66)]) or 15)
    ws.write_string(18, 1, "Sign-off", f.heading)
    for s in SIGN_OFF:
        r, c = _a1(s.cell)
        ws.write_string(r, c - 1, s.caption, f.label)
        ws.write_blank(r, c, None, f.cell(input=True, date=s.dtype == "date"))
        if s.dtype == "date":
            ws.data_validation(r, c, r, c, {
                "validate": "date", "criteria": ">", "value": dt.date(2000, 1, 1),
                "input_title": "Date signed off", "input_message": "The date you checked this return, e.g. 21/04/2025.",
                "error_title": "Not a date", "error_message": "Type a date such as 21/04/2025.",
            })
        else:
            ws.data_validation(r, c, r, c, {
                "validate": "length", "criteria": "between", "minimum": 0, "maximum": 255,
                "input_title": s.caption, "input_message": "Your name and job title.",
                "error_title": "Too long", "error_message": "Keep this under 255 characters.",
            })
    ws.write_string(23, 1, "Colour key", f.heading)
    ws.write_string(24, 1, "Colour", f.header)
    ws.write_string(24, 2, "Measure", f.header)
    ws.write_string(24, 3, "Action", f.header)
    for i, (colour, measure, action) in enumerate(rag.key_rows()):
        ws.write_string(25 + i, 1, colour, f.status[colour])
        ws.write_string(25 + i, 2, measure, f.text)
        ws.write_string(25 + i, 3, action, f.text)
    ws.merge_range(
        30, 1, 30, 3,
        "Better or worse follows each measure's polarity (for waste or sickness, lower is better). "
        "Some measures have tighter tolerances; the Status preview already uses them.",
        f.text,
    )
    ws.set_row(30, 32)
    ws.set_portrait()
    ws.set_paper(9)
    ws.fit_to_pages(1, 1)
    ws.activate()
    _protect(ws, password)


def _a1(cell: str) -> tuple[int, int]:
    from xlsxwriter.utility import xl_cell_to_rowcol

    return xl_cell_to_rowcol(cell)


def _write_stamp(wb, f: _Formats, stamp: Stamp, password):
    ws = wb.add_worksheet(STAMP_SHEET)
    for r, (k, v) in enumerate(stamp.rows()):
        ws.write_string(r, 0, k)
        ws.write_string(r, 1, v)
    ws.very_hidden()
    ws.protect(password or "")


def write_template(
    register: Register,
    portfolio: str,
    period: Period,
    out_dir: str | Path,
    *,
    previous: Mapping[str, tuple[str, float]] | None = None,
    password: str | None = None,
    contact: str | None = None,
    generated_at: dt.datetime | None = None,
    answers: Mapping[str, Mapping] | None = None,
    due: dt.date | None = None,
) -> TemplateInfo:
    """Write one portfolio's return template.

    Args:
        register: the year's register.
        portfolio: the portfolio's name as in the register.
        period: the quarter being returned.
        out_dir: the folder to write to (created if missing).
        previous: the history's latest actual of each measure before ``period``, by ref:
            (period key, value) (:meth:`derbyxl.history.History.latest_values`); with the
            register it gives the "Previous actual" shown (:func:`derbyxl.baseline.baseline`),
            the same value validate measures plausibility against.
        password: protect sheets with this password; none by default.
        contact: who to ask; by default the portfolio's lead officers from the register.
        generated_at: the time stamped into the file (now by default).
        answers: values to pre-type into input cells, by ref (used to make sample returns fast,
            as the benchmark does; an officer's return is the same file with these typed in).
        due: the due date shown on the Cover (three weeks after the quarter ends by default).

    Returns:
        A :class:`TemplateInfo` naming the file written.
    """
    items = register.for_portfolio(portfolio)
    if not items:
        raise ValueError(f"no items for portfolio {portfolio!r} in the register")
    previous = previous or {}
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if contact is None:
        people = sorted({f"{i.lead_officer} <{i.email}>" if i.email else i.lead_officer for i in items if i.lead_officer})
        contact = "; ".join(people[:4]) or "the Performance team"
    stamp = Stamp(
        format_version=FORMAT_VERSION,
        portfolio=portfolio,
        period=period.key,
        register_fingerprint=register.fingerprint,
        portfolio_fingerprint=register.portfolio_fingerprint(portfolio),
        generated_at=generated_at.isoformat(),
    )
    out = Path(out_dir) / template_filename(portfolio, period.key)
    title = f"{portfolio} - {period.label}"
    with atomic_path(out) as tmp:
        buffer = io.BytesIO()
        wb = Workbook(buffer, {"strings_to_formulas": False, "strings_to_urls": False, "in_memory": True})
        wb.set_properties(
            {
                "title": f"Performance return {period.label}: {portfolio}",
                "subject": f"Quarterly performance return {period.label}",
                "author": "derbyxl",
                "company": "Performance team",
                "comments": f"Generated by derbyxl {__version__}",
                "created": generated_at.replace(tzinfo=None),
            }
        )
        f = _Formats(wb)
        _write_cover(wb, f, register, portfolio, period, items, contact, password, due)
        counts = {}
        for spec in kinds_present(items):
            rows = [i for i in items if i.kind == spec.kind]
            counts[spec.name] = len(rows)
            _write_kind_sheet(wb, f, spec, rows, period, previous, title, password, answers)
        _write_stamp(wb, f, stamp, password)
        wb.close()
        tmp.write_bytes(lock_structure(buffer.getvalue(), password))
    return TemplateInfo(out, portfolio, counts)


_WORKBOOK_PR = re.compile(rb"<workbookPr\b[^>]*/>")


def _legacy_hash(password: str) -> str:
    """Excel's legacy 16-bit password hash (ECMA-376 part 4, 15.2.29 and 15.2.52), the one
    xlsxwriter gives sheet protection: it keeps honest people honest, no more."""
    digest = 0
    for ch in reversed(password):
        digest = ((digest >> 14) & 0x01) | ((digest << 1) & 0x7FFF)
        digest ^= ord(ch)
    digest = ((digest >> 14) & 0x01) | ((digest << 1) & 0x7FFF)
    digest ^= len(password) ^ 0xCE4B
    return f"{digest:X}"


def lock_structure(xlsx: bytes, password: str | None = None) -> bytes:
    """The workbook with its structure protected (``<workbookProtection lockStructure="1"/>``
    in xl/workbook.xml, which xlsxwriter does not write): sheets cannot be shown, hidden,
    renamed, moved or deleted by accident, in Excel or LibreOffice, which otherwise lets anyone
    unhide the stamp sheet (Excel's "very hidden" is merely hidden there). No password unless
    one is given (then Excel's legacy hash, as for the sheets)."""
    attrs = b'lockStructure="1"'
    if password:
        attrs = f'workbookPassword="{_legacy_hash(password)}" '.encode() + attrs
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "xl/workbook.xml":
                data, n = _WORKBOOK_PR.subn(lambda m: m.group(0) + b"<workbookProtection " + attrs + b"/>", data, count=1)
                if n != 1:
                    raise RuntimeError("xl/workbook.xml has no workbookPr element to place the protection after")
            dst.writestr(info, data)
    return out.getvalue()


def write_templates(
    register: Register,
    period: Period,
    out_dir: str | Path,
    *,
    portfolios: Iterable[str] | None = None,
    previous: Mapping[str, tuple[str, float]] | None = None,
    password: str | None = None,
    progress: Callable[[TemplateInfo], None] | None = None,
    workers: int | None = None,
    due: dt.date | None = None,
) -> list[TemplateInfo]:
    """Write a template for each portfolio (all in the register by default), in worker
    processes (:mod:`derbyxl.runner`).

    Raises:
        ValueError: when a named portfolio is not in the register.
        OutputNotWritable: when ``out_dir`` cannot be created or written.
    """
    names = []
    for p in portfolios or register.portfolios:
        found = register.find_portfolio(p)
        if found is None:
            raise ValueError(f"portfolio {p!r} is not in the register; it has: {', '.join(register.portfolios)}")
        names.append(found)
    generated_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    register.fingerprint  # worked out once here, not once per worker
    ensure_folder(out_dir)  # a folder that cannot be written is said here, not in each worker

    written: dict[int, TemplateInfo] = {}
    with kept(_use_register, (register, previous), workers) as runner:
        for i, info in runner.each(_write_one, [(name, period, out_dir, password, generated_at, due) for name in names]):
            if isinstance(info, Failed):  # a worker died (out of memory?): write it here, where an error shows
                info = write_template(register, names[i], period, out_dir, previous=previous, password=password, generated_at=generated_at, due=due)
            written[i] = info
            if progress:
                progress(info)
    return [written[i] for i in range(len(names))]


# -- in the worker processes (:mod:`derbyxl.runner`) --

#: The register and previous values a worker writes templates from (set by :func:`_use_register`).
_SETUP: tuple[Register, Mapping | None] | None = None


def _use_register(register: Register, previous: Mapping | None) -> None:
    global _SETUP
    _SETUP = register, previous


def _write_one(portfolio: str, period: Period, out_dir, password, generated_at, due) -> TemplateInfo:
    register, previous = _SETUP
    return write_template(register, portfolio, period, out_dir, previous=previous, password=password, generated_at=generated_at, due=due)
