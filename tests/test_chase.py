"""The chase list: every portfolio's return for the quarter, and what its officers should do."""

import csv

from derbyxl.chase import CAPTIONS, quarter_status, write_chase_csv
from derbyxl.demo import fill_return
from derbyxl.periods import Period
from derbyxl.register import load_register, sample_register_path
from derbyxl.template import write_template
from derbyxl.validate import validate_paths

from .conftest import GOVERNANCE, Q4, run
from .faults import mutate, set_input

HOUSING = "Housing-Strategic-Planning-and-Regulatory-Services_2024-25-Q4.xlsx"
CHILDREN = "Children-Young-People-and-Skills_2024-25-Q4.xlsx"


def _register_with_officers(tmp_path):
    """The sample register with lead officers and emails for Governance and Finance, one of
    them typed as a formula (as someone might paste it)."""
    rows = list(csv.reader(open(sample_register_path(), encoding="utf-8-sig")))
    header = rows[0] + ["Lead officer", "Email"]
    body = []
    for row in rows[1:]:
        if row[3] == "Governance and Finance":
            officer = "=HYPERLINK(\"http://x\")" if row[0].startswith("CM") else "Pat Singh"
            body.append(row + [officer, "pat.singh@derby.gov.uk"])
        else:
            body.append(row + ["", ""])
    path = tmp_path / "register.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *body])
    return load_register(path), path


def test_every_portfolio_once_those_to_chase_first(tmp_path, register, answers, returns_copy):
    (returns_copy / "Health-and-Adult-Care_2024-25-Q4.xlsx").unlink()
    mutate(returns_copy / GOVERNANCE, returns_copy / GOVERNANCE, lambda wb: set_input(wb, "Measures", "CM PM03", "Actual", "lots"))
    (returns_copy / HOUSING).rename(returns_copy / "Housing v1.xlsx")
    (returns_copy / "Housing v2.xlsx").write_bytes((returns_copy / "Housing v1.xlsx").read_bytes())
    # Last quarter's template for Digital: not a return for this quarter.
    (returns_copy / "Digital-and-Organisational-Transformation_2024-25-Q4.xlsx").unlink()
    q3 = write_template(register, "Digital and Organisational Transformation", Period.parse("2024-25-Q3"), tmp_path)
    fill_return(q3.path, answers, returns_copy / q3.path.name)
    # A draft with an error beside Children's good return.
    mutate(returns_copy / CHILDREN, returns_copy / "Children draft.xlsx", lambda wb: set_input(wb, "Measures", "EHCS PM21", "Actual", "lots"))
    rows = quarter_status(validate_paths([returns_copy], register, period=Q4), register)
    assert sorted(r["portfolio"] for r in rows) == sorted(register.portfolios)
    by = {r["portfolio"]: r for r in rows}
    # Within each status, the register's order.
    assert [r["portfolio"] for r in rows[3:]] == [p for p in register.portfolios if by[p]["status"] == "valid"]
    assert [r["portfolio"] for r in rows[:2]] == [p for p in register.portfolios if by[p]["status"] == "not returned"]
    assert [r["status"] for r in rows[:3]] == ["not returned", "not returned", "errors"]
    assert {r["portfolio"] for r in rows[:2]} == {"Health and Adult Care", "Digital and Organisational Transformation"}
    # Its Q3 file does not count as a return for Q4, but the row names it and says what to do.
    digital = by["Digital and Organisational Transformation"]
    assert digital["files"] == q3.path.name
    assert digital["action"] == (
        f"Sent the wrong quarter's return ({q3.path.name} is the 2024/25 Q3 template); "
        "send the 2024/25 Q4 return, made from its template (derbyxl migrate carries the answers over)."
    )
    assert by["Health and Adult Care"]["action"] == "Send the 2024/25 Q4 return." and by["Health and Adult Care"]["files"] == ""
    gov = by["Governance and Finance"]
    assert gov["status"] == "errors" and gov["errors"] == 1 and gov["files"] == GOVERNANCE
    assert gov["action"].startswith(f"Fix 1 error(s) in {GOVERNANCE} and send it again; the first: Measures!G")
    assert "'lots' is not a number" in gov["action"]
    housing = by["Housing, Strategic Planning and Regulatory Services"]
    assert housing["status"] == "valid" and housing["files"] == "Housing v1.xlsx; Housing v2.xlsx"
    # Both are the same, signed the same day: consolidate takes the later file, then the name.
    assert housing["action"].startswith("Nothing to do (Housing v2.xlsx is the one used)")
    children = by["Children, Young People and Skills"]
    assert children["status"] == "valid" and children["files"] == f"Children draft.xlsx; {CHILDREN}"
    # Its one warning is that another file returns the same portfolio (duplicate-return).
    assert children["action"] == f"Nothing to do ({CHILDREN} is the one used); 1 warning(s) to look at."
    assert (children["errors"], children["warnings"]) == (0, 1)
    assert by["City Centre Regeneration, Strategy and Policy"]["action"] == "Nothing to do; 2 warning(s) to look at."
    assert all(r["status"] == "valid" for r in rows[3:])
    # The register has no officers: those columns are empty, not invented.
    assert all(r["lead_officers"] == r["emails"] == "" for r in rows)


def test_the_csv_names_officers_and_keeps_formulas_as_text(tmp_path, good_dir):
    register, path = _register_with_officers(tmp_path)
    returns = tmp_path / "returns"
    returns.mkdir()
    for p in good_dir.glob("*.xlsx"):
        if p.name != GOVERNANCE:
            (returns / p.name).write_bytes(p.read_bytes())
    rows = quarter_status(validate_paths([returns], register, period=Q4), register)
    gov = rows[0]
    assert gov["portfolio"] == "Governance and Finance" and gov["status"] == "not returned"
    assert gov["lead_officers"] == '=HYPERLINK("http://x"); Pat Singh' and gov["emails"] == "pat.singh@derby.gov.uk"
    out = tmp_path / "outputs" / "chase.csv"  # its folder made if need be
    assert write_chase_csv(rows, out) == 9
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # a BOM, so that Excel reads UTF-8
    table = list(csv.reader(open(out, encoding="utf-8-sig")))
    assert tuple(table[0]) == CAPTIONS and len(table) == 10
    assert table[1][:4] == ["Governance and Finance", "not returned", '\'=HYPERLINK("http://x"); Pat Singh', "pat.singh@derby.gov.uk"]
    # The same from the command line.
    cli_out = tmp_path / "cli-chase.csv"
    r = run("validate", returns, "--register", path, "--period", "2024-25-Q4", "--no-cache", "--chase", cli_out)
    assert r.returncode == 0, r.stderr
    assert "1 of 9 portfolios to chase" in " ".join(r.stdout.split())
    assert list(csv.reader(open(cli_out, encoding="utf-8-sig"))) == table
