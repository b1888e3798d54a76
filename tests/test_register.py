import csv
import os
from pathlib import Path

import pytest
import xlsxwriter

from derbyxl.register import REQUIRED_COLUMNS, RegisterError, load_register, sample_register_path


def test_sample_register_counts(register):
    kinds = {}
    for item in register.items:
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    assert len(register.items) == 199
    assert len(register.portfolios) == 9
    assert kinds == {"measure": 94, "action": 55, "project": 32, "risk": 18}
    assert register.themes and set(register.themes) == {"A City of Growth", "A Green City", "A Resilient City", "A Vibrant City", "Working Smarter"}


def test_sample_values_follow_excel(register):
    neet = register.by_ref["EHCS PM21"]
    assert (neet.unit, neet.polarity, neet.target, neet.previous_actual) == ("percent", "lower", pytest.approx(0.047), pytest.approx(0.047))
    assert register.by_ref["CM PM03"].tolerances.green_within == pytest.approx(0.005)
    assert register.by_ref["Regen PM18"].unit == "money"
    assert register.by_ref["EHCS PM28"].target is None


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


GOOD = ["M1", "measure", "Residual waste", "Streetpride", "A Green City", "kg", "lower", "530", "518"]


def test_headers_match_ignoring_case_and_spacing(tmp_path):
    header = [h.upper().replace(" ", "  ") for h in REQUIRED_COLUMNS]
    reg = load_register(_write_csv(tmp_path / "r.csv", header, [GOOD]))
    assert reg.by_ref["M1"].target == 530


def test_broken_register_lists_every_problem(tmp_path):
    rows = [
        GOOD,
        GOOD,  # duplicate ref
        ["A1", "activity", "Something", "P", "T", "", "", "", ""],  # unknown kind
        ["M2", "measure", "No polarity", "P", "T", "percent", "", "50%", ""],  # target without polarity
        ["M3", "measure", "Bad target", "P", "T", "number", "higher", "lots", ""],  # non-numeric target
        ["M4", "measure", "", "P", "T", "furlongs", "higher", "3", ""],  # empty description, unknown unit
    ]
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "bad.csv", REQUIRED_COLUMNS, rows))
    found = {(p.row, p.column) for p in exc.value.problems}
    assert found == {(3, "Ref"), (4, "Kind"), (5, "Polarity"), (6, "Target"), (7, "Description"), (7, "Unit")}


def test_missing_columns_are_all_named(tmp_path):
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "r.csv", ["Ref", "Kind", "Description"], [["X", "action", "d"]]))
    assert [p.column for p in exc.value.problems] == ["Portfolio", "Theme", "Unit", "Polarity", "Target", "Previous actual", None]
    assert str(exc.value.problems[-1]) == "row 1: the header row (row 1) has: 'Ref', 'Kind', 'Description'; headers are matched ignoring case and spaces"


def test_percent_target_typed_as_whole_number_is_refused(tmp_path):
    row = ["M1", "measure", "d", "P", "T", "percent", "higher", 94, ""]
    path = tmp_path / "r.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Register")
    ws.write_row(0, 0, REQUIRED_COLUMNS)
    ws.write_row(1, 0, row)
    wb.close()
    with pytest.raises(RegisterError) as exc:
        load_register(path)
    assert "9400%" in str(exc.value.problems[0])


def test_xlsx_register_with_percent_cells(tmp_path):
    path = tmp_path / "r.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Register")
    ws.write_row(0, 0, REQUIRED_COLUMNS + ("Green within",))
    ws.write_row(1, 0, ["M1", "Measure", "d", "P", "T", "%", "Higher", 0.938, 0.932, "0.5%"])
    wb.close()
    item = load_register(path).by_ref["M1"]
    assert (item.unit, item.polarity, item.target, item.tolerances.green_within) == ("percent", "higher", 0.938, 0.005)


def test_xlsx_register_needs_register_sheet(tmp_path):
    path = tmp_path / "r.xlsx"
    wb = xlsxwriter.Workbook(path)
    wb.add_worksheet("Items")
    wb.close()
    with pytest.raises(RegisterError, match="problem"):
        load_register(path)


def test_fingerprint_changes_with_a_target(tmp_path):
    a = load_register(sample_register_path())
    rows = list(csv.reader(open(sample_register_path(), encoding="utf-8")))
    for row in rows:
        if row[0] == "CS 01":
            row[7] = "520"
    b = load_register(_write_csv(tmp_path / "r.csv", rows[0], rows[1:]))
    assert a.fingerprint != b.fingerprint
    assert a.portfolio_fingerprint("Children, Young People and Skills") == b.portfolio_fingerprint("Children, Young People and Skills")


def test_a_file_is_hashed_again_only_when_it_changed(tmp_path, monkeypatch):
    # validate asks for the register's fingerprint before loading it and again as it loads:
    # the file is read for it once, unless it changed in between.
    from derbyxl.register import file_fingerprint

    path = tmp_path / "register.csv"
    original = sample_register_path().read_bytes()
    path.write_bytes(original)
    first = file_fingerprint(path)
    changed = original.replace(b"CS 01,", b"CS 0X,", 1)
    assert len(changed) == len(original) and changed != original
    reads = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real(self))
    assert file_fingerprint(path) == first and reads == []
    before = path.stat().st_mtime_ns
    path.write_bytes(changed)  # saved again a second later, the same size
    os.utime(path, ns=(before + 10**9, before + 10**9))
    assert file_fingerprint(path) != first and reads == ["register.csv"]
    # Loading reads the file once more, to parse it, and hashes those same bytes.
    assert load_register(path).fingerprint == file_fingerprint(path) and reads == ["register.csv", "register.csv"]


@pytest.mark.parametrize("text", ["0", "12", "-3", "12.5", "-0.25", "007", "1.0"])
def test_plain_numbers_read_as_the_value_parser_reads_them(tmp_path, text):
    """The register reads a plainly written number without the value parser (a register of
    real councils has a different target on every row); it must make the same of it."""
    from derbyxl.register import _PLAIN_NUMBER
    from derbyxl.values import UNITS, parse_value

    assert _PLAIN_NUMBER.fullmatch(text)
    for unit in UNITS:
        parsed = parse_value(text, unit)
        assert parsed.code in (None, "value-normalised") and parsed.value == float(text), unit
    path = tmp_path / "r.csv"
    path.write_text(f"Ref,Kind,Description,Portfolio,Theme,Unit,Polarity,Target,Previous actual\nM1,measure,d,P,T,number,higher,{text},{text}\n")
    item = load_register(path).items[0]
    assert item.target == item.previous_actual == float(text)
