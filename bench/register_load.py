"""Register load: the same register as .csv and as .xlsx, each loaded by ``load_register`` in a
fresh process (every command pays this), and the old way of reading the .xlsx (openpyxl,
read-only) for comparison.

    python bench/register_load.py                  # 300 portfolios: 59,700 items, 5 runs each
    python bench/register_load.py --portfolios 20  # smaller

The .xlsx is written as a council keeps one: percentages as numbers formatted as percent,
numbers as numbers, text as text (in the shared strings table, as Excel saves it), on a sheet
named Register.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

_LOAD = """
import sys, time
t = time.perf_counter()
from derbyxl.register import load_register
imported = time.perf_counter()
reg = load_register(sys.argv[1])
done = time.perf_counter()
print(len(reg.items), done - imported, imported - t)
"""

_OPENPYXL = """
import sys, time
from openpyxl import load_workbook
t = time.perf_counter()
wb = load_workbook(sys.argv[1], read_only=True, data_only=True)
n = sum(1 for _ in wb["Register"].iter_rows(values_only=True))
print(n, time.perf_counter() - t, 0)
"""


def write_xlsx(csv_path: Path, xlsx_path: Path) -> int:
    """The register at ``csv_path`` as a workbook; returns its rows."""
    import xlsxwriter

    # Shared strings, as Excel saves a workbook (constant_memory would write inline strings,
    # a third larger, which no council's register has).
    wb = xlsxwriter.Workbook(str(xlsx_path))
    ws = wb.add_worksheet("Register")
    pct = wb.add_format({"num_format": "0.0%"})
    n = 0
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows)
        ws.write_row(0, 0, header)
        unit = header.index("Unit")
        for r, row in enumerate(rows, start=1):
            for c, text in enumerate(row):
                if text.endswith("%") and _is_number(text[:-1]):
                    ws.write_number(r, c, float(text[:-1]) / 100, pct)
                elif _is_number(text) and not (row[unit] == "percent" and abs(float(text)) > 1):
                    # (a percent above 100% stays text, as the CSV has it: as a number, the
                    # register would take 1.004 in a percent cell for a slip)
                    ws.write_number(r, c, float(text), pct if row[unit] == "percent" and c > unit else None)
                elif text:
                    ws.write_string(r, c, text)
            n = r
    wb.close()
    return n


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _time(script: str, path: Path, repeat: int) -> dict:
    walls, items = [], None
    for _ in range(repeat):
        r = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True, cwd=HERE.parent)
        n, wall, _imports = r.stdout.split()
        items, walls = int(n), walls + [float(wall)]
    return {"items": items, "median_s": statistics.median(walls), "walls": walls, "us_per_row": 1e6 * statistics.median(walls) / max(items, 1)}


def measure(portfolios: int, work: Path, repeat: int = 5) -> dict:
    """Time loading a register of ``portfolios`` x 199 items as .csv and as .xlsx."""
    from run import build_register

    work.mkdir(parents=True, exist_ok=True)
    csv_path = build_register(portfolios, work / "register-load.csv")
    xlsx_path = work / "register-load.xlsx"
    write_xlsx(csv_path, xlsx_path)
    result = {
        "portfolios": portfolios,
        "csv": _time(_LOAD, csv_path, repeat),
        "xlsx": _time(_LOAD, xlsx_path, repeat),
        "xlsx_openpyxl_rows_only": _time(_OPENPYXL, xlsx_path, max(1, repeat // 2)),
    }
    result["xlsx_over_csv"] = result["xlsx"]["median_s"] / result["csv"]["median_s"]
    return result


def report(result: dict) -> None:
    n = len(result["csv"]["walls"])
    print(f"register load ({result['csv']['items']:,} items, {'median of %d fresh processes' % n if n > 1 else 'one fresh process'}):")
    for label, key in (("csv", "csv"), ("xlsx (calamine)", "xlsx"), ("xlsx rows via openpyxl (old)", "xlsx_openpyxl_rows_only")):
        step = result[key]
        print(f"  {label:<30}{step['median_s']:>8.2f} s{step['us_per_row']:>8.1f} us/row")
    print(f"  xlsx / csv: {result['xlsx_over_csv']:.2f}x")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portfolios", type=int, default=300, help="copies of the sample's 199 items (300: 59,700 items)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    args = ap.parse_args(argv)
    result = measure(args.portfolios, args.out, args.repeat)
    report(result)
    (args.out / "register-load.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
