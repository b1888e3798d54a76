"""One definition of an item's record: the Data sheet, the history table and the export all
have exactly the fields of derbyxl.record, in its order."""

from __future__ import annotations

import csv
import sqlite3

from openpyxl import load_workbook

from derbyxl.consolidate import consolidate
from derbyxl.history import History
from derbyxl.record import FIELDS, VALUE_COLUMNS, VALUE_TYPES

from .conftest import Q4


def test_data_sheet_history_and_export_follow_the_record(tmp_path, register, good_dir):
    result = consolidate(good_dir, register, Q4, tmp_path / "out")
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
