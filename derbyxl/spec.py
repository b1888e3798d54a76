"""The one definition of a return: its sheets, their columns, which cells are input, and what
each input may hold.

The template writer (:mod:`derbyxl.template`), the reader (:mod:`derbyxl.read`) and the pandera
schemas (:mod:`derbyxl.schemas`: a column per checked input, its type, choices, range and
finding codes) are all built from :data:`SHEETS`, so they cannot drift apart.
Change a caption or a list of allowed values here and all three follow.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from derbyxl import rag

#: Bumped whenever the layout of a return changes; older returns are reported as outdated.
FORMAT_VERSION = 3

#: Name of the very hidden sheet holding the identity stamp.
STAMP_SHEET = "_derbyxl"
COVER_SHEET = "Cover"

#: The longest text a cell may hold (Excel's own limit).
MAX_TEXT = 32767
#: Commentary longer than this is accepted with a warning: it will not print well.
LONG_TEXT = 2000


@dataclass(frozen=True)
class Column:
    """One column of a return sheet.

    Attributes:
        caption: the header text, exactly as in row 1 of the sheet.
        key: the name the reader and schemas use.
        role: ``readonly`` (filled from the register, locked), ``input`` (typed by the officer,
            unlocked and shaded) or ``formula`` (computed live, locked).
        dtype: for input columns: ``number``, ``whole``, ``text`` or ``choice``.
        choices: allowed values of a ``choice`` column.
        minimum, maximum: the range of a ``whole`` column.
        width: column width in characters.
        prompt: the input message shown when the cell is selected.
        required: an input that must be filled in (the pandera schema refuses it empty).
        field: the record's key for the value read, when it is not ``key`` (an action's
            Status is read as ``status_word``; ``status`` is the RAG worked out from it).
        missing, invalid: the finding codes the schema gives a required value left empty and
            a value that is not allowed (not one of the choices, out of range, not a number).
        item_range: the plausible range comes from the register item (its minimum and
            maximum; 0%-100% for percentages), not from the column.
    """

    caption: str
    key: str
    role: str = "readonly"
    dtype: str = "text"
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    width: float = 12
    prompt: str = ""
    required: bool = False
    field: str | None = None
    missing: str | None = None
    invalid: str | None = None
    item_range: bool = False

    @property
    def name(self) -> str:
        """The record's key for this column's value (:attr:`field`, else :attr:`key`)."""
        return self.field or self.key


@dataclass(frozen=True)
class SheetSpec:
    """One sheet of a return: the items of one kind, one row each."""

    name: str
    kind: str
    columns: tuple[Column, ...]
    intro: str = ""

    @functools.cached_property
    def inputs(self) -> tuple[Column, ...]:
        """The columns an officer types into."""
        return tuple(c for c in self.columns if c.role == "input")

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)

    def index(self, key: str) -> int:
        """Zero-based position of a column in the sheet as written."""
        return [c.key for c in self.columns].index(key)


REF = Column("Ref", "ref", width=14)
DESCRIPTION = Column("Description", "description", width=60)
COMMENTARY = Column(
    "Commentary",
    "commentary",
    role="input",
    dtype="text",
    width=60,
    prompt="Required for Amber and Red, and when there is no data: what is happening and what is being done.",
)

#: What the Actual cell's prompt says first, by the measure's unit: what to type, in words that
#: work in Excel and in LibreOffice alike (LibreOffice stores 7.4 typed in a percent cell as
#: 740%; typing the % sign is right in both).
ACTUAL_PROMPTS = {
    "percent": "A percentage: type it with the % sign, e.g. 7.4%.",
    "money": "An amount in pounds as a number, e.g. 30710876 (no £ sign needed).",
    "rate": "The rate as a number, e.g. 110.4 (without 'per 10,000').",
    "score": "The score as a number, e.g. 3.5.",
    "number": "A number, e.g. 3134.",
}
#: Units of measure typed as a number of them: "A number of days, e.g. 12.5."
for _unit in ("days", "hours", "weeks", "minutes", "kg", "km"):
    ACTUAL_PROMPTS[_unit] = f"A number of {_unit}, e.g. 12.5 (no '{_unit}' after it)."

SHEETS: tuple[SheetSpec, ...] = (
    SheetSpec(
        "Measures",
        "measure",
        (
            REF,
            DESCRIPTION,
            Column("Unit", "unit", width=9),
            Column("Polarity", "polarity", width=9),
            Column("Target", "target", width=12),
            Column("Previous actual", "previous", width=12),
            Column(
                "Actual",
                "actual",
                role="input",
                dtype="number",
                invalid="not-a-number",
                item_range=True,
                width=13,
                prompt="Leave it blank if there is no data, and say why in Note.",
            ),
            Column(
                "Note",
                "note",
                role="input",
                dtype="text",
                width=18,
                prompt="Optional: provisional, Q3 data, data not yet available...",
            ),
            COMMENTARY,
            Column("Status preview", "preview", role="formula", width=13),
        ),
        intro="Type each measure's actual for the period. The Status preview colours itself as you type.",
    ),
    SheetSpec(
        "Actions",
        "action",
        (
            REF,
            DESCRIPTION,
            Column(
                "Status",
                "status",
                role="input",
                dtype="choice",
                choices=rag.ACTION_STATUSES,
                required=True,
                field="status_word",
                missing="missing-status",
                invalid="invalid-status",
                width=16,
                prompt="Pick one: Completed, On track, Some slippage, Major slippage.",
            ),
            COMMENTARY,
        ),
    ),
    SheetSpec(
        "Projects",
        "project",
        (
            REF,
            DESCRIPTION,
            Column(
                "Status",
                "status",
                role="input",
                dtype="choice",
                choices=rag.PROJECT_STATUSES,
                required=True,
                field="status_word",
                missing="missing-status",
                invalid="invalid-status",
                width=14,
                prompt="Pick the project's RAG: Green, Green/Amber, Amber, Amber/Red, Red, or Blue when complete.",
            ),
            COMMENTARY,
        ),
    ),
    SheetSpec(
        "Risks",
        "risk",
        (
            REF,
            DESCRIPTION,
            Column(
                "Likelihood",
                "likelihood",
                role="input",
                dtype="whole",
                minimum=rag.RISK_MIN,
                maximum=rag.RISK_MAX,
                required=True,
                missing="missing-risk-rating",
                invalid="invalid-risk-rating",
                width=11,
                prompt="A whole number from 1 (rare) to 4 (almost certain).",
            ),
            Column(
                "Impact",
                "impact",
                role="input",
                dtype="whole",
                minimum=rag.RISK_MIN,
                maximum=rag.RISK_MAX,
                required=True,
                missing="missing-risk-rating",
                invalid="invalid-risk-rating",
                width=11,
                prompt="A whole number from 1 (minor) to 4 (critical).",
            ),
            Column("Risk score", "score", role="formula", width=11),
            COMMENTARY,
        ),
    ),
)

SHEET_BY_KIND = {s.kind: s for s in SHEETS}
SHEET_BY_NAME = {s.name: s for s in SHEETS}


@dataclass(frozen=True)
class SignOff:
    """The sign-off block of the cover sheet: caption, key, and the cell that holds the answer."""

    caption: str
    key: str
    cell: str
    dtype: str = "text"


#: The Cover sheet's cell showing the return's period (findings about the period point at it).
COVER_PERIOD_CELL = "C4"

SIGN_OFF: tuple[SignOff, ...] = (
    SignOff("Completed by", "completed_by", "C20"),
    SignOff("Date", "signed_date", "C21", dtype="date"),
    SignOff("Approved by", "approved_by", "C22"),
)


@dataclass(frozen=True)
class Stamp:
    """What a return says it is: written to the very hidden stamp sheet, read back by the validator."""

    format_version: int
    portfolio: str
    period: str
    register_fingerprint: str
    portfolio_fingerprint: str
    generated_at: str
    generator: str = "derbyxl"

    FIELDS = ("generator", "format_version", "portfolio", "period", "register_fingerprint", "portfolio_fingerprint", "generated_at")

    def rows(self) -> list[tuple[str, str]]:
        return [(name, str(getattr(self, name))) for name in self.FIELDS]


def kinds_present(items) -> list[SheetSpec]:
    """The sheets a portfolio's return needs, in the standard order."""
    kinds = {item.kind for item in items}
    return [s for s in SHEETS if s.kind in kinds]


def safe_filename(text: str) -> str:
    """A file-name fragment from a portfolio name: letters, digits and hyphens only."""
    out = []
    for ch in text:
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")[:80] or "portfolio"


def template_filename(portfolio: str, period_key: str) -> str:
    return f"{safe_filename(portfolio)}_{period_key}.xlsx"
