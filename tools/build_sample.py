"""Build the bundled sample register and Q4 answers from seed 004 (Annual Performance Results
2024/25). Run once by a developer; its output is committed in derbyxl/sample/.

    python tools/build_sample.py ../shared/seeds/004_0b0ff12a5a698a9f.txt

Polarity comes from each measure's meaning (checked against the published direction of travel);
units from how the council writes the values.
"""

import csv
import re
import sys
from pathlib import Path

PORTFOLIOS = [
    "Children, Young People and Skills",
    "City Centre Regeneration, Strategy and Policy",
    "Climate Change, Transport and Sustainability",
    "Streetpride, Public Safety and Leisure",
    "Cost of Living, Equalities and Communities",
    "Digital and Organisational Transformation",
    "Housing, Strategic Planning and Regulatory Services",
    "Health and Adult Care",
    "Governance and Finance",
]
# Measures where a lower value is better, by what they count.
LOWER = {
    "EHCS PM21", "LS PM01", "LS PM02", "LS PM05", "EHCS PM27", "EHCS PM30", "EHCS PM34",
    "EIIS PM04", "EIIS PM39b", "SEND 01", "SS PM07", "SS PM16", "PTE PM10", "CS 01", "CS 03",
    "PPS PM01", "PPS PM02a", "PPS PM09", "CDG PM04", "CDG PM02", "PPS PM03", "CM 01", "CP 08f",
    "DH HD13", "DH HD20", "ASC Local 2a(i)", "ASC Local 2a2(ii)", "ASC PM06", "LCT PM06",
    "PH PM24", "PH PM25", "LPD PM06",
}
DAYS = {"CP 08f", "ASC PM06"}
SCORE = {"EHCS PM28", "LI PM03a", "LI PM04a"}
# Tolerances the council evidently applies more tightly than the KEY (see tests/test_sample.py).
TOLERANCES = {"CM PM03": {"Green within": "0.5%"}}
THEME_FIX = {"Regen PM14 b": "A City of Growth"}
RISK_FACTORS = {6: (3, 2), 8: (4, 2), 9: (3, 3), 12: (4, 3), 16: (4, 4)}


def number(text, unit):
    text = text.strip()
    if not text or text.upper().startswith("N/A") or "not" in text.lower() or text.lower() == "no target":
        return "", ""
    m = re.match(r"^(.*?)\s*\(([^)]*)\)\s*$", text)
    note = ""
    if m:
        text, note = m.group(1), m.group(2)
    text = re.sub(r"per\s+.*$", "", text).strip()
    text = text.replace("£", "").replace(",", "").replace("kg", "").replace("km", "").strip()
    if text.endswith("%"):
        value = float(text[:-1]) / 100
        return repr(round(value, 6)), note
    return repr(float(text)) if "." in text else text, note


def unit_of(ref, desc, values):
    joined = " ".join(values)
    if ref in DAYS:
        return "days"
    if ref in SCORE:
        return "score"
    if "%" in joined:
        return "percent"
    if "£" in joined:
        return "money"
    if "kg" in joined:
        return "kg"
    if "km" in joined:
        return "km"
    if re.search(r"per 10,000|per 100k|per 000s|per 100,000|Rate of", desc + " " + joined):
        return "rate"
    return "number"


def main(seed):
    lines = Path(seed).read_text(encoding="utf-8").split("\n")
    portfolio = section = None
    register, answers = [], []
    for line in lines:
        f = [c.strip() for c in line.split("\t")]
        head = f[0]
        if head in PORTFOLIOS:
            portfolio = head
            continue
        if head.startswith("Actions identified"):
            section = "action"
            continue
        if head.startswith("Delivery Plan measures"):
            section = "measure"
            continue
        if head.startswith("Priority projects"):
            section = "pr"
            continue
        if not portfolio or len(f) < 5 or not head or head == "Ref":
            continue
        ref, desc, prev, actual, status, target, dot = f[:7]
        theme = f[7] if len(f) > 7 and f[7] else THEME_FIX.get(ref, "")
        kind = section if section != "pr" else ("risk" if ref.startswith("SR") else "project")
        row = {"Ref": ref, "Kind": kind, "Description": desc, "Portfolio": portfolio, "Theme": theme,
               "Unit": "", "Polarity": "", "Target": "", "Previous actual": "", "Green within": ""}
        ans = {"Ref": ref, "Actual": "", "Note": "", "Status": "", "Likelihood": "", "Impact": "",
               "Commentary": "", "Published status": status, "Published DoT": dot,
               "Published actual": actual}
        if kind == "measure":
            unit = unit_of(ref, desc, [prev, actual, target])
            row["Unit"] = unit
            row["Polarity"] = "lower" if ref in LOWER else "higher"
            row["Target"] = number(target, unit)[0]
            row["Previous actual"] = number(prev, unit)[0]
            row.update(TOLERANCES.get(ref, {}))
            value, note = number(actual, unit)
            ans["Actual"], ans["Note"] = value, note
            if not value:
                ans["Note"] = actual
                ans["Commentary"] = "Year-end figure not yet published by the data owner; expected next quarter."
        elif kind == "action":
            ans["Status"] = actual
        elif kind == "project":
            ans["Status"] = status
        else:
            score = int(re.search(r"\d+", status).group())
            ans["Likelihood"], ans["Impact"] = RISK_FACTORS[score]
            ans["Commentary"] = f"Risk score {score}; mitigations reviewed this quarter by the risk owner."
        if status in ("Red", "Amber", "Amber/Red") or actual in ("Some slippage", "Major slippage"):
            ans["Commentary"] = ans["Commentary"] or "Behind plan at year end; recovery actions agreed with the lead officer."
        register.append(row)
        answers.append(ans)
    out = Path(__file__).resolve().parent.parent / "derbyxl" / "sample"
    for name, rows in (("register.csv", register), ("answers_2024-25-Q4.csv", answers)):
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    print(f"{len(register)} items written to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
