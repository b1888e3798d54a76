import contextlib
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


def test_items_fields_and_fingerprints_stay_as_they_were_stamped(tmp_path):
    # Every optional column set on one item, some on another, none on a third. The
    # fingerprint was worked out by the code before the rarely set fields were put together
    # (Item.rare): templates and histories carry it, so it must not change. Read back from
    # the compact form the items are equal, and the default fields shared.
    from derbyxl.register import NO_RARE, Register, _from_compact

    header = ["Ref", "Kind", "Description", "Portfolio", "Theme", "Unit", "Polarity", "Target", "Previous actual", "Lead officer", "Email", "Green within", "Amber within", "Blue from", "Minimum", "Maximum", "Target Q1", "Target Q2", "Target Q3", "Target Q4", "Previous period"]
    rows = [
        ["M1", "measure", "Residual waste", "Streetpride", "A Green City", "kg", "lower", "530", "518", "Ann Lee", "ann@derby.gov.uk", "2%", "10%", "5%", "0", "900", "130", "260", "400", "530", "2024/25 Q4"],
        ["M2", "measure", "Visits", "Streetpride", "A Green City", "number", "higher", "5", "4", *[""] * 12],
        ["A1", "action", "Do it", "Streetpride", "A Green City", "", "", "", "", "Bob", *[""] * 11],
    ]
    reg = load_register(_write_csv(tmp_path / "r.csv", header, rows))
    m1, m2, a1 = reg.items
    assert (m1.lead_officer, m1.email, m1.minimum, m1.maximum, m1.quarter_targets, m1.previous_period) == ("Ann Lee", "ann@derby.gov.uk", 0.0, 900.0, (130.0, 260.0, 400.0, 530.0), "2024-25-Q4")
    assert (m1.tolerances.green_within, m1.tolerances.amber_within, m1.tolerances.blue_from) == (0.02, 0.1, 0.05)
    assert m1.target_for(2) == 260.0 and m2.target_for(2) == 5.0 and m1.bounds == (0.0, 900.0)
    assert m2.rare is NO_RARE and (a1.lead_officer, a1.email, a1.quarter_targets) == ("Bob", None, None)
    assert Register._hash(reg.items) == reg.portfolio_fingerprint("Streetpride") == "6c261f7fc9aa416f"
    again = _from_compact(reg.compact(), "r.csv", {})
    assert again.items == reg.items and again.items[1].rare is NO_RARE


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


# -- registers as councils keep them --

COUNCIL = [
    ["Ref", "Kind", "Description", "Portfolio", "Theme", "Unit", "Polarity", "Target", "Previous actual"],
    ["CT 1", "Measure", "Council tax collected", "Resources", "Well Run", "%", "Higher is better", "95%", "96%"],
    ["WS 2", "Measure", "Residual waste per household", "Place", "Green", "kg", "Smaller is better", "440", "452"],
]


def test_title_and_blank_rows_above_the_header(tmp_path):
    path = tmp_path / "r.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerows([["Derby City Council: performance register 2025/26"], ["Updated 1 April 2025"], [], *COUNCIL])
    reg = load_register(path)
    assert [i.ref for i in reg.items] == ["CT 1", "WS 2"]
    # ... and a problem below such a header names the file's own row number.
    rows = [["Title"], [], COUNCIL[0], ["X 1", "thing", "d", "P", "T", "", "", "", ""]]
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "bad.csv", rows[0], rows[1:]))
    assert [str(p) for p in exc.value.problems] == ["row 4, column Kind: unknown kind 'thing'; use one of action, measure, project, risk"]


def test_no_header_row_says_what_the_fullest_row_has(tmp_path):
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "r.csv", ["Item", "Type", "What"], [["A", "action", "d"]]))
    (problem,) = exc.value.problems
    assert "no header row naming Ref, Kind" in problem.message and "the fullest row (row 1) has: Item, Type, What" in problem.message


def test_csv_saved_by_excel_as_plain_csv_in_windows_1252(tmp_path):
    path = tmp_path / "r.csv"
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows([COUNCIL[0], ["RS 2", "measure", "Savings delivered", "Resources – Finance", "Well Run", "£", "higher", "£1.2m", "£1,150,000"]])
    path.write_bytes(buffer.getvalue().encode("cp1252"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8: the £ and the dash are one byte each
    item = load_register(path).by_ref["RS 2"]
    assert (item.portfolio, item.unit, item.target, item.previous_actual) == ("Resources – Finance", "money", 1_200_000, 1_150_000)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_csv_in_utf8_with_or_without_bom(tmp_path, bom):
    path = tmp_path / "r.csv"
    path.write_bytes(bom + "\n".join(",".join(r) for r in COUNCIL).encode("utf-8"))
    assert [i.ref for i in load_register(path).items] == ["CT 1", "WS 2"]


@pytest.mark.parametrize(
    "word, polarity",
    [("Higher is better", "higher"), ("bigger is better", "higher"), ("Larger is better", "higher"), ("high", "higher"),
     ("Lower is better", "lower"), ("Smaller is better", "lower"), ("low", "lower"), ("LOWER", "lower")],
)  # fmt: skip
def test_polarity_words(tmp_path, word, polarity):
    rows = [COUNCIL[1][:6] + [word] + COUNCIL[1][7:]]
    assert load_register(_write_csv(tmp_path / "r.csv", COUNCIL[0], rows)).by_ref["CT 1"].polarity == polarity


@pytest.mark.parametrize("unit, canonical", [("hours", "hours"), ("hrs", "hours"), ("weeks", "weeks"), ("Minutes", "minutes"), ("mins", "minutes"), ("working days", "days")])
def test_units_of_time(tmp_path, unit, canonical):
    rows = [["T 1", "measure", "Time to answer", "P", "T", unit, "lower", "4", "5"]]
    assert load_register(_write_csv(tmp_path / "r.csv", COUNCIL[0], rows)).by_ref["T 1"].unit == canonical


@pytest.mark.parametrize("amount, value", [("£1.2m", 1_200_000), ("£450k", 450_000), ("£2bn", 2e9), ("1.5m", 1_500_000), ("£30,710,876", 30_710_876)])
def test_amounts_of_money(tmp_path, amount, value):
    rows = [["M 1", "measure", "Savings", "P", "T", "money", "higher", amount, ""]]
    assert load_register(_write_csv(tmp_path / "r.csv", COUNCIL[0], rows)).by_ref["M 1"].target == value


@pytest.mark.parametrize("text", ["2024-25-Q4", "2024/25 Q4", "Q4 2024/25", "Q4 24/25", "Jan-Mar 2025", "March 2025"])
def test_previous_period_spellings(tmp_path, text):
    rows = [["M 1", "measure", "d", "P", "T", "number", "higher", "5", "4", text]]
    assert load_register(_write_csv(tmp_path / "r.csv", COUNCIL[0] + ["Previous period"], rows)).by_ref["M 1"].previous_period == "2024-25-Q4"


def test_quarter_targets(tmp_path):
    header = COUNCIL[0] + ["Target Q1", "Target Q2", "Target Q3", "Target Q4"]
    rows = [["CT 1", "measure", "Council tax", "P", "T", "percent", "higher", "95%", "96%", "28%", "55%", "82%", ""]]
    item = load_register(_write_csv(tmp_path / "r.csv", header, rows)).by_ref["CT 1"]
    assert [item.target_for(q) for q in (1, 2, 3, 4)] == [pytest.approx(0.28), pytest.approx(0.55), pytest.approx(0.82), pytest.approx(0.95)]
    assert item.quarter_targets == (pytest.approx(0.28), pytest.approx(0.55), pytest.approx(0.82), None)


def test_a_problem_on_every_row_names_row_column_and_what_was_seen(tmp_path):
    header = COUNCIL[0] + ["Target Q1", "Previous period"]
    rows = [
        ["A 1", "measure", "d", "P", "T", "furlongs", "higher", "5", "", "", ""],
        ["A 2", "measure", "d", "P", "T", "number", "sideways", "5", "", "", ""],
        ["A 3", "measure", "d", "P", "T", "money", "higher", "£lots", "", "", ""],
        ["A 4", "measure", "d", "P", "T", "percent", "higher", "95%", "", "", "Q5 2024"],
        ["A 5", "action", "d", "P", "T", "", "", "", "", "3", ""],
        ["A 5", "action", "d", "P", "T", "", "", "", "", "", ""],
        ["", "risk", "d", "P", "T", "", "", "", "", "", ""],
        ["A 8", "measure", "d", "", "T", "number", "higher", "", "", "", ""],
        ["A 9", "measure", "d", "P", "T", "", "higher", "4", "", "", ""],
    ]
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "r.csv", header, rows))
    assert [str(p) for p in exc.value.problems] == [
        "row 2, column Unit: unknown unit 'furlongs'; use one of percent, number, money, rate, days, kg, km, score, hours, weeks, minutes",
        "row 3, column Polarity: unknown polarity 'sideways'; use higher or lower",
        "row 4, column Target: Target is not a number: '£lots' is not a number",
        "row 5, column Previous period: 'Q5 2024' is not a quarter; write it like 2024/25 Q4",
        "row 6, column Target Q1: a action has no target",
        "row 7, column Ref: duplicate ref 'A 5' (first on row 6)",
        "row 8, column Ref: Ref is empty",
        "row 9, column Portfolio: Portfolio is empty",
        "row 10, column Unit: a measure needs a unit",
    ]


def test_combinations_parsed_once_give_the_same_items_and_problems_with_the_memo_cleared(tmp_path, monkeypatch, register):
    # The parser keeps only the latest combinations of typed fields it has parsed: clearing
    # them (here after every row) changes neither the items nor the problems found.
    import derbyxl.register as register_module

    sample = sample_register_path()
    monkeypatch.setattr(register_module, "_MEMO_SIZE", 1)
    again = load_register(sample)
    assert again.items == register.items and again.fingerprint == register.fingerprint
    header = COUNCIL[0]
    rows = [["A 1", "measure", "d", "P", "T", "furlongs", "higher", "5"], ["A 2", "measure", "d", "P", "T", "number", "higher", "5"], ["A 3", "measure", "d", "P", "T", "furlongs", "higher", "5"]]
    with pytest.raises(RegisterError) as exc:
        load_register(_write_csv(tmp_path / "r.csv", header, rows))
    assert [p.row for p in exc.value.problems] == [2, 4]


def test_xlsx_register_read_with_calamine_below_a_title(tmp_path):
    path = tmp_path / "r.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Register")
    ws.write(0, 0, "Performance register 2025/26")
    for r, row in enumerate(COUNCIL, start=2):
        ws.write_row(r, 0, row)
    wb.add_worksheet("Notes").write(0, 0, "not the register")
    wb.close()
    reg = load_register(path)
    assert [(i.ref, i.polarity) for i in reg.items] == [("CT 1", "higher"), ("WS 2", "lower")]
    # A problem names the sheet's row (the title above counted), as the officer sees it.
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Register")
    ws.write(0, 0, "Performance register 2025/26")
    for r, row in enumerate([*COUNCIL, ["WS 3", "Measure", "", "Place", "Green", "kg", "Smaller is better", "1", "2"]], start=2):
        ws.write_row(r, 0, row)
    wb.close()
    with pytest.raises(RegisterError) as exc:
        load_register(path)
    assert [(p.row, p.column) for p in exc.value.problems] == [(6, "Description")]


def test_xlsx_register_that_would_abort_the_reader_is_refused(tmp_path):
    # A cell at XFD1048576 makes python-calamine abort the process; the pre-scan refuses it.
    import subprocess
    import sys

    path = tmp_path / "r.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Register")
    ws.write_row(0, 0, COUNCIL[0])
    ws.write_row(1, 0, COUNCIL[1])
    ws.write(1048575, 16383, "far")
    wb.close()
    code = f"from derbyxl.register import load_register, RegisterError\ntry:\n    load_register({str(path)!r})\nexcept RegisterError as e:\n    print(e.problems[0])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The register workbook cannot be read safely: sheet 'Register' uses row 1,048,576")


def test_an_old_style_xls_register_says_what_to_do(tmp_path):
    path = tmp_path / "r.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100))
    with pytest.raises(RegisterError) as exc:
        load_register(path)
    assert "save it as Excel Workbook (.xlsx), or as CSV" in exc.value.problems[0].message


def test_a_checked_register_is_kept_and_read_back_only_for_the_same_bytes(tmp_path, monkeypatch):
    import derbyxl.register as register_module

    cache = tmp_path / "results.sqlite"
    path = tmp_path / "register.csv"
    path.write_bytes(sample_register_path().read_bytes())
    first = load_register(path, cache=cache)
    parses = []
    real_parse = register_module.parse_register
    monkeypatch.setattr(register_module, "parse_register", lambda *a, **k: parses.append(1) or real_parse(*a, **k))

    # The same bytes elsewhere: read back, not parsed, and the same in every field.
    elsewhere = tmp_path / "copy.csv"
    elsewhere.write_bytes(path.read_bytes())
    again = load_register(elsewhere, cache=cache)
    assert parses == []
    assert again.items == first.items and again.source == str(elsewhere)
    assert again.fingerprint == first.fingerprint and again.portfolios == first.portfolios
    assert any(item.tolerances is not register_module.KEY for item in again.items)  # the sample's own "Green within"

    # A changed byte is another register: parsed, and its change seen.
    path.write_bytes(path.read_bytes().replace(b"CS 01,", b"CS 0X,", 1))
    changed = load_register(path, cache=cache)
    assert parses == [1] and "CS 0X" in changed.by_ref and "CS 01" not in changed.by_ref

    # A faulty register is never kept: it is parsed, and refused, every time.
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace("measure", "measurement", 1))
    for n in (2, 3):
        with pytest.raises(RegisterError):
            load_register(bad, cache=cache)
        assert len(parses) == n

    # A damaged entry is parsed again, not trusted: garbage, another file's entry under this
    # file's key, an entry with an item's column cut short, one of an older layout. An
    # unusable database is no failure.
    import marshal
    import zlib

    from derbyxl.register import _digest

    key = _digest(elsewhere)
    fingerprints, compact = marshal.loads(_payload(cache, key))
    columns = marshal.loads(zlib.decompress(compact))
    short = marshal.dumps((fingerprints, zlib.compress(marshal.dumps([*columns[:-1], columns[-1][:-1]]))))
    # An older layout, a column more (items kept their register row before): parsed again.
    older = marshal.dumps((fingerprints, zlib.compress(marshal.dumps([*columns[:-1], list(range(len(columns[0]))), columns[-1]]))))
    changed_key = _digest(path)
    for payload in (b"\x00", _payload(cache, changed_key), short, older):
        _set_payload(cache, key, payload)
        assert load_register(elsewhere, cache=cache).items == first.items
    assert len(parses) == 3 + 4  # each of the four parsed again (and kept again)
    (tmp_path / "a-file.txt").write_text("")
    parses.clear()
    assert load_register(elsewhere, cache=tmp_path / "a-file.txt" / "x.sqlite").items == first.items


def _payload(cache, key: str) -> bytes:
    import sqlite3

    with contextlib.closing(sqlite3.connect(cache)) as db:
        return bytes(db.execute("SELECT payload FROM file_check WHERE sha256 = ? AND context = 'register'", (key,)).fetchone()[0])


def _set_payload(cache, key: str, payload: bytes) -> None:
    import sqlite3

    with contextlib.closing(sqlite3.connect(cache)) as db:
        db.execute("UPDATE file_check SET payload = ? WHERE sha256 = ? AND context = 'register'", (payload, key))
        db.commit()
