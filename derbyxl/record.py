"""What a quarter records of each item, defined once: the fields of an item's record
(:class:`Record`), which the master's Data sheet shows, the history keeps, and the export
writes, and the few more that validation works with (:data:`WORKING`).

An item's record is made once, where its row of a return is read (in a worker process:
:func:`derbyxl.checks.normalise_rows`), carries its status from there, and is completed by the
consolidation (:func:`derbyxl.consolidate.build_rows`) with what the register and the history
say; an item no return gave gets a record there.

Adding a field is one :class:`Field` here (and its value where the consolidation builds the
records, :func:`derbyxl.consolidate.build_rows`): the record's attribute, the Data sheet's
column, the history's column (a new column is added to an existing database when it is
opened) and the exports' follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

from derbyxl.spec import SHEETS


@dataclass(frozen=True)
class Field:
    """One field of an item's record.

    Attributes:
        key: the name in the rows, the history's column and the export.
        caption: the Data sheet's header (None: not on the Data sheet).
        width: the Data sheet's column width in characters.
        sql: the history's column type, ``TEXT``, ``REAL`` or ``INTEGER`` (None: not kept).
    """

    key: str
    caption: str | None
    width: float = 12
    sql: str | None = "TEXT"


#: In the Data sheet's order (Ref first: finance colleagues' pivot tables and lookups rely
#: on it); the history and the export follow the same order.
FIELDS: tuple[Field, ...] = (
    Field("ref", "Ref", 14),
    Field("kind", "Kind", 9),
    Field("portfolio", "Portfolio", 30),
    Field("theme", "Theme", 18),
    Field("description", "Description", 50),
    Field("unit", "Unit", 9),
    Field("actual", "Actual", 13, "REAL"),
    Field("target", "Target", 12, "REAL"),
    Field("status", "Status", 12),
    Field("dot", "DoT", 14),
    Field("dot_against", "DoT compared with", 12),
    Field("dot_short", "DoT short term", 14),
    Field("dot_short_against", "DoT short term compared with", 14),
    Field("previous_actual", "Previous actual", 13, None),
    Field("score", "Risk score", 10, "INTEGER"),
    Field("status_word", "Reported status", 16),
    Field("commentary", "Commentary", 60),
    Field("note", "Note", 18),
    Field("period", "Period", 11),
    Field("source_file", "Source file", 30),
    Field("polarity", None),
    Field("sha256", None),
)

#: What validation keeps on a record beside its :data:`FIELDS`, neither shown, kept nor
#: exported: every value a return's sheets take (:mod:`derbyxl.spec`) that is no field (a
#: risk's two ratings: its score is one), where the values were found (the sheet, the row's
#: number and the sheet's column letters by column key, which the record's ``cells`` puts
#: together: :class:`Cells`; the workbook is its ``source_file``), and which of them were
#: found bad while checking (a set of column keys; the findings say why).
WORKING: tuple[tuple[str, str], ...] = (
    *((name, "float | str | None") for name in dict.fromkeys(c.name for s in SHEETS for c in s.inputs) if name not in {f.key for f in FIELDS}),
    ("sheet", "str | None"),
    ("row_number", "int | None"),
    ("letters", "dict[str, str] | None"),
    ("bad", "frozenset | set"),
)

#: The Data sheet's columns: (header, key, width).
DATA_COLUMNS: tuple[tuple[str, str, float], ...] = tuple((f.caption, f.key, f.width) for f in FIELDS if f.caption)
#: The history's item_value columns (after run_id), in order, and their types.
VALUE_COLUMNS: tuple[str, ...] = tuple(f.key for f in FIELDS if f.sql)
VALUE_TYPES: dict[str, str] = {f.key: f.sql for f in FIELDS if f.sql}


_TYPES = {"TEXT": "str | None", "REAL": "float | None", "INTEGER": "int | None", None: "object"}


class Cells:
    """Where one row's values are: the A1 reference of each column's cell, by column key,
    worked out when asked (from a record's ``row_number`` and ``letters``: a record per item of
    a thousand returns need not carry a dict, nor this)."""

    __slots__ = ("letters", "row")

    def __init__(self, letters: dict[str, str], row: int):
        self.letters = letters  # column key -> column letters, shared by the sheet's rows
        self.row = row  # 1-based row number

    def get(self, key: str, default=None) -> str | None:
        letters = self.letters.get(key)
        return default if letters is None else f"{letters}{self.row}"

    def as_dict(self) -> dict[str, str]:
        return {key: f"{letters}{self.row}" for key, letters in self.letters.items()}

    def __eq__(self, other):
        return isinstance(other, Cells) and (self.letters, self.row) == (other.letters, other.row)

    def __repr__(self):
        return f"Cells(row={self.row}, {self.letters})"


def _get(self, key: str, default=None):
    return getattr(self, key, default)


def _keys(self) -> tuple[str, ...]:
    return KEYS


def _cells(self) -> Cells | None:
    """Where the row's values are: the A1 cell of each column, by column key."""
    return None if self.letters is None else Cells(self.letters, self.row_number)


#: The fields' keys, in order.
KEYS: tuple[str, ...] = tuple(f.key for f in FIELDS)

#: An item's record: an attribute per :data:`FIELDS` entry, typed by its history column, then
#: one per :data:`WORKING` entry (None until set). Its fields are also read and set by name,
#: as a mapping's (``record["actual"]``, ``record.get("note")``; a name that is no field is an
#: error); as a mapping its keys are :data:`KEYS`. It takes 256 bytes where a dict of the
#: values a return gives took 464 and its :class:`Cells` 48 more, and the one record serves
#: validation and consolidation (there were two): 597,000 of them at 3,000 returns. Reading
#: by attribute (or :func:`operator.attrgetter`) is the quick way; by name costs about 3x a
#: dict's lookup.
Record = make_dataclass(
    "Record",
    [(f.key, _TYPES[f.sql], field(default=None)) for f in FIELDS] + [(key, kind, field(default=None)) for key, kind in WORKING],
    slots=True,
    namespace={
        "__getitem__": object.__getattribute__,  # C functions: no Python call per lookup
        "__setitem__": object.__setattr__,
        "get": _get,
        "keys": _keys,
        "cells": property(_cells),
        "__module__": __name__,
    },
)
