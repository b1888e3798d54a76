"""One definition of an item's record: the consolidation's records, the Data sheet, the
history table and the export all have exactly the fields of derbyxl.record, in its order."""

from __future__ import annotations

import csv
import sqlite3

from openpyxl import load_workbook

from derbyxl.consolidate import consolidate
from derbyxl.history import History
import dataclasses
import sys

import pytest

from derbyxl.record import FIELDS, KEYS, VALUE_COLUMNS, VALUE_TYPES, WORKING, Record

from .conftest import Q4


def test_data_sheet_history_and_export_follow_the_record(tmp_path, register, good_dir):
    result = consolidate(good_dir, register, Q4, tmp_path / "out")
    # The consolidation's records are typed records with exactly the fields, in order, and
    # those validation works with after them; the records validation made are the ones completed.
    assert len(result.rows) == 199 and all(type(r) is Record for r in result.rows)
    assert [f.name for f in dataclasses.fields(Record)] == [*KEYS, *(key for key, _ in WORKING)] and list(KEYS) == [f.key for f in FIELDS]
    given = {id(r) for fr in result.report.files for r in fr.rows}
    assert all(id(r) in given for r in result.rows if r.status != "No return") and any(r.status != "No return" for r in result.rows)
    pm06 = next(r for r in result.rows if r.ref == "LPD PM06")
    assert pm06["actual"] == pm06.actual and pm06.get("note") == pm06.note and pm06.period is None
    ws = load_workbook(result.master, read_only=True)["Data"]
    assert [c.value for c in next(ws.iter_rows(max_row=1))] == [f.caption for f in FIELDS if f.caption]
    with sqlite3.connect(tmp_path / "out" / "history.sqlite") as db:
        columns = [(r[1], r[2]) for r in db.execute("PRAGMA table_info(item_value)")]
    assert columns == [("run_id", "INTEGER"), *((c, VALUE_TYPES[c]) for c in VALUE_COLUMNS)]
    with History(tmp_path / "out" / "history.sqlite") as h:
        assert h.export_csv(tmp_path / "h.csv") == 199
        row = h.values_for(Q4)["LPD PM06"]
    header = next(csv.reader(open(tmp_path / "h.csv", encoding="utf-8-sig")))
    assert header == list(VALUE_COLUMNS) and set(row) == set(VALUE_COLUMNS)
    assert row["period"] == Q4.key and row["polarity"] and len(row["sha256"]) == 64


def test_a_record_is_read_and_set_by_name_and_refuses_other_names():
    rec = Record(ref="CM PM03", kind="measure", actual=0.93)
    assert (rec["ref"], rec.get("actual"), rec.get("score"), rec.get("nothing", "-")) == ("CM PM03", 0.93, None, "-")
    rec["status"] = "Green"
    assert rec.status == "Green" and dict(rec) == {key: getattr(rec, key) for key in KEYS}
    with pytest.raises(AttributeError):
        rec["stauts"]  # a misspelt field is an error, not a silent None
    with pytest.raises(AttributeError):
        rec["stauts"] = "Green"
    with pytest.raises(TypeError):
        Record(stauts="Green")
    assert not hasattr(rec, "__dict__") and sys.getsizeof(rec) < sys.getsizeof(dict(rec)) / 2
