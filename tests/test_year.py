"""A real year of quarters (issue 14): 2025/26 Q1 to Q4 on a council's register with quarter
targets for its cumulative measures, after last year's 2024/25 Q4, each quarter run as an
officer runs it (templates with --history, filled returns, validate, consolidate)."""

from __future__ import annotations

import json

import pytest
from openpyxl import load_workbook

from derbyxl.cli import main
from derbyxl.demo import fill_return
from derbyxl.history import History
from derbyxl.migrate import migrate
from derbyxl.periods import Period
from derbyxl.register import load_register

from .conftest import COUNCIL_HEADER, COUNCIL_ROWS, council_answers, summary_rows, write_council_register

LAST_YEAR = dict(AH_01=0.85, AH_02=12, PL_01=452, PL_02=610, RS_01=0.96, RS_02=1_150_000)
YEAR = {
    "2025-26-Q1": dict(AH_01=0.91, AH_02=9, PL_01=104, PL_02=140, RS_01=0.29, RS_02=300_000),
    "2025-26-Q2": dict(AH_01=0.88, AH_02=11, PL_01=236, PL_02=300, RS_01=0.50, RS_02=600_000),
    "2025-26-Q3": dict(AH_01=0.93, AH_02=10, PL_01=320, PL_02=450, RS_01=0.83, RS_02=900_000),
    "2025-26-Q4": dict(AH_01=0.90, AH_02=8, PL_01=430, PL_02=620, RS_01=0.955, RS_02=1_250_000),
}
# By hand, from the KEY against each quarter's target (Target Q1..Q4, else Target):
# RS 01 council tax 29% against 28% at Q1 is Green (against the year's 95% it would be Red);
# PL 01 waste 236kg against 220kg at Q2 is 7.3% adverse, Amber; RS 02 has no profile.
STATUSES = {
    "2025-26-Q1": {"AH 01": "Green", "AH 02": "Blue", "PL 01": "Green", "PL 02": "No target", "RS 01": "Green", "RS 02": "Red"},
    "2025-26-Q2": {"AH 01": "Amber", "AH 02": "Amber", "PL 01": "Amber", "PL 02": "No target", "RS 01": "Amber", "RS 02": "Red"},
    "2025-26-Q3": {"AH 01": "Green", "AH 02": "Green", "PL 01": "Green", "PL 02": "No target", "RS 01": "Green", "RS 02": "Red"},
    "2025-26-Q4": {"AH 01": "Green", "AH 02": "Blue", "PL 01": "Green", "PL 02": "No target", "RS 01": "Green", "RS 02": "Green"},
}
TARGETS = {"2025-26-Q1": 0.28, "2025-26-Q2": 0.55, "2025-26-Q3": 0.82, "2025-26-Q4": 0.95}  # RS 01's


def _quarter(tmp_path, reg_path, register, key, actuals, out):
    period = Period.parse(key)
    templates, returns = tmp_path / f"templates-{key}", tmp_path / f"returns-{key}"
    history = out / "history.sqlite"
    args = ["templates", "--register", str(reg_path), "--period", key, "--out", str(templates)]
    assert main(args + (["--history", str(history)] if history.exists() else [])) == 0
    for t in sorted(templates.glob("*.xlsx")):
        fill_return(t, council_answers(**actuals), returns / t.name)
    findings = tmp_path / f"findings-{key}.json"
    assert main(["validate", str(returns), "--register", str(reg_path), "--period", key, "--json", str(findings), "--history", str(history)]) == 0
    assert main(["consolidate", str(returns), "--register", str(reg_path), "--period", key, "--out", str(out)]) == 0
    data = load_workbook(out / f"master_{key}.xlsx", read_only=True)
    rows = list(data["Data"].iter_rows(values_only=True))
    header = rows[0]
    by_ref = {r[0]: dict(zip(header, r)) for r in rows[1:]}
    summary = summary_rows(data["Summary"])
    return period, templates, json.loads(findings.read_text()), by_ref, summary


@pytest.mark.filterwarnings("ignore:Sparkline Group extension")  # openpyxl reads no sparklines: they are checked in the XML
def test_a_whole_year_of_quarters(tmp_path):
    reg_path = write_council_register(tmp_path / "register.csv")
    register = load_register(reg_path)
    out = tmp_path / "outputs"
    # Last year's Q4, recorded: what this year's quarters compare with.
    _quarter(tmp_path, reg_path, register, "2024-25-Q4", LAST_YEAR, out)
    for key, actuals in YEAR.items():
        period, templates, findings, data, summary = _quarter(tmp_path, reg_path, register, key, actuals, out)
        measures = {ref: row for ref, row in data.items() if row["Kind"] == "measure"}
        assert {ref: row["Status"] for ref, row in measures.items()} == STATUSES[key], key
        # The Data sheet shows the target used, and so did the template.
        assert data["RS 01"]["Target"] == pytest.approx(TARGETS[key])
        resources = load_workbook(next(templates.glob("Resources_*.xlsx")), read_only=True)["Measures"]
        trows = {r[0]: r for r in resources.iter_rows(min_row=2, values_only=True)}
        assert trows["RS 01"][4] == pytest.approx(TARGETS[key])
        # The template's Previous actual is the last recorded quarter's, the number plausibility uses.
        before = LAST_YEAR if period.quarter == 1 else YEAR[period.previous.key]
        assert trows["RS 01"][5] == pytest.approx(before["RS_01"])
        # A cumulative measure with a profile raises no large-change at Q1; without one it does.
        large = {f["ref"] for f in findings if f["code"] == "large-change"}
        assert "RS 01" not in large and "PL 01" not in large
        assert ("RS 02" in large) == (period.quarter == 1)
        # Short term against the quarter before, recorded; year on year only at Q4, where
        # last year's Q4 is recorded. Each says what it compared.
        for ref, row in measures.items():
            assert row["DoT short term compared with"] == period.previous.label, (key, ref)
            if period.quarter == 4:
                assert row["DoT compared with"] == "2024/25 Q4" and row["DoT"] != "No comparison"
            else:
                assert (row["DoT"], row["DoT compared with"]) == ("No comparison", None), (key, ref)
        everything = summary["All"]
        compared = everything["out of (% measures improved on last year)"]
        if period.quarter == 4:
            # Improving on last year's Q4: AH 01, AH 02, PL 01, PL 02, RS 02; RS 01 (95.5% < 96%) not.
            assert compared == 6 and everything["% measures improved on last year"] == pytest.approx(5 / 6)
            assert measures["RS 01"]["DoT"] == "Deteriorating"
        else:
            assert compared == 0 and everything["% measures improved on last year"] == "-"  # no "% improved" made up from nothing
        met = sum(s in ("Blue", "Green") for s in STATUSES[key].values())
        rated = sum(s in ("Blue", "Green", "Amber", "Red") for s in STATUSES[key].values())
        assert everything["% measures meeting target"] == pytest.approx(met / rated)
        # Every item of every kind counted, by status: 10 items, none without a return.
        assert sum(everything[s] for s in ("Blue", "Green", "Green/Amber", "Amber", "Amber/Red", "Red", "No target", "No data", "No return")) == 10
        assert everything["No return"] == 0
    # The Trends sheet: each measure over the quarters recorded (last year's Q4 and this year's
    # four), coloured by its status then, with one sparkline each over those quarters.
    master = out / "master_2025-26-Q4.xlsx"
    trends = load_workbook(master, read_only=True)["Trends"]
    rows = list(trends.iter_rows(values_only=True))
    assert rows[0] == ("Ref", "Description", "Unit", "2024/25 Q4", "2025/26 Q1", "2025/26 Q2", "2025/26 Q3", "2025/26 Q4", "Trend")
    by_ref = {r[0]: r for r in rows[1:]}
    assert sorted(by_ref) == ["AH 01", "AH 02", "PL 01", "PL 02", "RS 01", "RS 02"]
    assert by_ref["RS 01"][3:8] == pytest.approx((0.96, 0.29, 0.50, 0.83, 0.955))
    sparklines = _sparklines(master, "Trends")
    assert len(sparklines) == 6 and all(rng.endswith(f"!D{row}:H{row}") for rng, row in sparklines)
    # Q1's short-term DoT for council tax: 29% after 96% is Improving on the footing of the
    # quarter targets (96% x 28/95 = 28.3%), not a collapse.
    with History(out / "history.sqlite") as h:
        q1 = h.values_for("2025-26-Q1")
        assert (q1["RS 01"]["dot_short"], q1["RS 01"]["dot_short_against"]) == ("Improving", "2024/25 Q4")
        assert q1["RS 01"]["target"] == pytest.approx(0.28) and q1["RS 01"]["dot"] == "No comparison"
        assert h.periods() == ["2024-25-Q4", "2025-26-Q1", "2025-26-Q2", "2025-26-Q3", "2025-26-Q4"]


def test_without_history_q4_compares_year_on_year_with_the_registers_outturn(tmp_path, register):
    from derbyxl.consolidate import build_rows

    from derbyxl.baseline import baseline, short_term, year_ago

    item = register.by_ref["EHCS PM21"]
    q4 = Period.parse("2024-25-Q4")
    assert baseline(item, q4, {}).period == "2023-24-Q4" and year_ago(item, q4, {}).value == item.previous_actual
    rows = {r["ref"]: r for r in build_rows(register, q4, {}, None)}
    assert rows["EHCS PM21"]["previous_actual"] == item.previous_actual
    # Q1 of the next year: the register's outturn is no quarter before and no year ago.
    q1 = Period.parse("2025-26-Q1")
    assert baseline(item, q1, {}).period is None  # the register does not say which quarter it is for
    assert short_term(item, q1, {}) is None and year_ago(item, q1, {}) is None


def test_migrate_carries_every_answer_into_a_changed_register(tmp_path):
    old_reg = load_register(write_council_register(tmp_path / "old.csv"))
    rows = [list(r) for r in COUNCIL_ROWS]
    by_ref = {r[0]: r for r in rows}
    rows.remove(by_ref["RS A1"])  # an item removed
    by_ref["RS 02"][5] = "number"  # a unit changed (savings now counted as schemes)
    by_ref["RS 02"][7] = "12"
    by_ref["RS 02"][12] = ""
    rows.append(["RS 03", "measure", "Invoices paid in 30 days", "Resources", "Well Run Council", "percent", "higher", "95%", "", "", "", "", "", "", "Sam Cole", "sam@example.gov.uk"])
    new_reg_path = write_council_register(tmp_path / "new.csv", rows, COUNCIL_HEADER)
    new_reg = load_register(new_reg_path)
    from derbyxl.template import write_template

    q4 = Period.parse("2024-25-Q4")
    tpl = write_template(old_reg, "Resources", q4, tmp_path / "t")
    answers = council_answers(RS_01=0.96, RS_02=1_150_000)
    answers["RS R1"]["commentary"] = "=HYPERLINK(\"http://x\")"  # text stays text
    old = fill_return(tpl.path, answers, tmp_path / "Resources_2024-25-Q4.xlsx")
    before = old.read_bytes()
    new = tmp_path / "Resources_2025-26-Q1.xlsx"
    m = migrate(old, new_reg, "2025-26-Q1", new)
    assert old.read_bytes() == before  # the officer's file is only read
    assert sorted(m.carried) == ["RS 01", "RS 02", "RS R1"]
    assert dict(m.left) == {
        "RS A1": "no longer in the register for this portfolio; its answers were not carried",
        "RS 02": "its unit changed from money to number; the actual was not carried, type it in number",
        "RS 03": "is new in the register; answer it",
    }
    from derbyxl.read import read_return

    raw = read_return(new)
    assert raw.stamp["period"] == "2025-26-Q1" and raw.stamp["register_fingerprint"] == new_reg.fingerprint
    measures = {r.ref: r.values for r in raw.sheets["Measures"].rows}
    assert measures["RS 01"]["actual"] == pytest.approx(0.96)
    assert measures["RS 02"]["actual"] is None and measures["RS 02"]["commentary"] == answers["RS 02"]["commentary"]
    risks = {r.ref: r.values for r in raw.sheets["Risks"].rows}
    assert (risks["RS R1"]["likelihood"], risks["RS R1"]["impact"]) == (2, 3)
    assert risks["RS R1"]["commentary"] == "=HYPERLINK(\"http://x\")"
    # Once RS 02 and RS 03 are answered and it is signed, the migrated return is valid.
    done = fill_return(new, {"RS 02": {"actual": 12}, "RS 03": {"actual": 0.97}}, tmp_path / "signed.xlsx")
    from derbyxl.validate import validate_file

    assert [f.code for f in validate_file(done, new_reg, period="2025-26-Q1").findings if f.severity == "error"] == []


def test_migrate_from_the_command_line_and_its_refusals(tmp_path, good_dir):
    from derbyxl.register import sample_register_path

    old = good_dir / "Governance-and-Finance_2024-25-Q4.xlsx"
    new = tmp_path / "Governance-and-Finance_2025-26-Q1.xlsx"
    assert main(["migrate", str(old), "--period", "2025-26-Q1", "--out", str(new)]) == 0
    assert new.exists()
    assert main(["migrate", str(old), "--period", "2025-26-Q1", "--out", str(old)]) == 1  # never over the old file
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a workbook")
    assert main(["migrate", str(junk), "--period", "2025-26-Q1", "--out", str(tmp_path / "x.xlsx")]) == 1
    council = write_council_register(tmp_path / "council.csv")
    assert main(["migrate", str(old), "--register", str(council), "--period", "2025-26-Q1", "--out", str(tmp_path / "y.xlsx")]) == 1
    assert main(["migrate", str(tmp_path / "missing.xlsx"), "--register", str(sample_register_path()), "--period", "2025-26-Q1", "--out", str(tmp_path / "z.xlsx")]) == 2


def _sparklines(path, sheet: str) -> list[tuple[str, int]]:
    """The sparklines of a sheet as written in its XML (openpyxl does not read them): the
    range each draws and the row it sits in."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as zf:
        wb = zf.read("xl/workbook.xml").decode()
        rels = zf.read("xl/_rels/workbook.xml.rels").decode()
        rid = re.search(rf'name="{sheet}" sheetId="\d+" r:id="(rId\d+)"', wb).group(1)
        part = re.search(rf'Id="{rid}" Type="[^"]+" Target="([^"]+)"', rels).group(1)
        xml = zf.read("xl/" + part).decode()
    return [(f, int(cell[1:])) for f, cell in re.findall(r"<x14:sparkline><xm:f>([^<]+)</xm:f><xm:sqref>([A-Z]+\d+)</xm:sqref>", xml)]


@pytest.fixture(scope="module")
def two_quarters(tmp_path_factory):
    """A history of two quarters consolidated, 2024/25 Q4 and 2025/26 Q1 (read, never changed)."""
    tmp = tmp_path_factory.mktemp("two-quarters")
    reg_path = write_council_register(tmp / "register.csv")
    register = load_register(reg_path)
    out = tmp / "outputs"
    _quarter(tmp, reg_path, register, "2024-25-Q4", LAST_YEAR, out)
    _quarter(tmp, reg_path, register, "2025-26-Q1", YEAR["2025-26-Q1"], out)
    return out / "history.sqlite"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_history_export_round_trips_with_every_column_a_pivot_needs(tmp_path, two_quarters, suffix):
    import pandas as pd

    dest = tmp_path / f"history{suffix}"
    assert main(["history", "export", "--history", str(two_quarters), "--out", str(dest)]) == 0
    frame = pd.read_csv(dest, encoding="utf-8-sig") if suffix == ".csv" else pd.read_parquet(dest)
    wanted = {"period", "ref", "kind", "portfolio", "theme", "description", "unit", "polarity", "target", "actual", "status", "dot_short", "dot_short_against", "dot", "dot_against", "commentary", "source_file", "sha256"}
    assert wanted <= set(frame.columns) and len(frame) == 20
    rs = frame[(frame["ref"] == "RS 01") & (frame["period"] == "2025-26-Q1")].iloc[0]
    assert (rs["description"], rs["unit"], rs["polarity"]) == ("Council tax collected (cumulative)", "percent", "higher")
    assert rs["target"] == pytest.approx(0.28) and rs["actual"] == pytest.approx(0.29)  # the target used, typed
    assert (rs["dot_short"], rs["dot_short_against"], rs["dot"]) == ("Improving", "2024/25 Q4", "No comparison")
    assert frame["actual"].dtype.kind == "f" and frame["target"].dtype.kind == "f"


def test_history_export_refuses_other_formats(tmp_path):
    from derbyxl.history import History

    with History(tmp_path / "h.sqlite"):
        pass
    assert main(["history", "export", "--history", str(tmp_path / "h.sqlite"), "--out", str(tmp_path / "h.xlsx")]) == 2


def test_history_show_lists_periods_or_says_it_is_empty(tmp_path, capsys):
    from derbyxl.history import History

    path = tmp_path / "h.sqlite"
    with History(path):
        pass
    assert main(["history", "show", "--history", str(path)]) == 0
    assert "No quarter has been consolidated into" in capsys.readouterr().out
    reg_path = write_council_register(tmp_path / "register.csv")
    _quarter(tmp_path, reg_path, load_register(reg_path), "2025-26-Q1", YEAR["2025-26-Q1"], tmp_path / "outputs")
    capsys.readouterr()
    assert main(["history", "show", "--history", str(tmp_path / "outputs" / "history.sqlite")]) == 0
    shown = capsys.readouterr().out
    assert "2025-26-Q1" in shown and "Valid" in shown
