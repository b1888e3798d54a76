"""Benchmark: templates, validate and consolidate over N returns of ~200 items each.

    python bench/run.py --returns 1000          # the goal: validate + consolidate in <= 15 s
    python bench/run.py --returns 1000 --repeat 5   # the median of five runs of each command
    python bench/run.py --returns 50 --out bench/out/smoke

Builds a register of N portfolios (each a copy of the bundled sample's 199 items), writes the
templates (timed), makes the returns by typing the sample's answers into them with a share of
officers' mistakes, then times `derbyxl validate` and `derbyxl consolidate` as separate commands,
and the floor: reading every return once with python-calamine. When datamaps is installed it is
timed on the same files. Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from derbyxl.demo import load_answers  # noqa: E402
from derbyxl.periods import Period  # noqa: E402
from derbyxl.register import load_register, sample_register_path  # noqa: E402

PERIOD = Period.parse("2024-25-Q4")


def build_register(n: int, path: Path, seed: int = 11) -> Path:
    """N copies of the sample register's items, one portfolio each. As in a collection from
    many councils, each copy has previous actuals of its own (the sample's, moved by up to
    10%; the targets are the same everywhere, as a national target is), so almost every row
    of the register differs in a number."""
    rows = list(csv.DictReader(open(sample_register_path(), encoding="utf-8")))
    cols = list(rows[0])
    rnd = random.Random(seed)

    def moved(text: str, i: int) -> str:
        number = text[:-1] if text.endswith("%") else text
        try:
            value = float(number)
        except ValueError:
            return text  # empty, N/A, ...
        if i == 0:
            return text
        return f"{value * rnd.uniform(0.9, 1.1):.6f}".rstrip("0").rstrip(".") + ("%" if text.endswith("%") else "")

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for i in range(n):
            for row in rows:
                w.writerow(
                    {
                        **row,
                        "Ref": f"{row['Ref']}/{i}",
                        "Portfolio": f"Portfolio {i:04d}",
                        "Previous actual": moved(row["Previous actual"], i),
                    }
                )
    return path


_FILL: dict = {}


def _fill_setup(register, answers, out: Path) -> None:
    """In each worker: what the returns are filled in from."""
    _FILL.update(register=register, answers=answers, out=out)


def _fill_one(portfolio: str) -> None:
    from derbyxl.template import write_template

    write_template(_FILL["register"], portfolio, PERIOD, _FILL["out"], answers=_FILL["answers"])


def answers_for(n: int, mistakes: float, seed: int = 7) -> dict[str, dict]:
    base = load_answers()
    rnd = random.Random(seed)
    out = {}
    for i in range(n):
        broken = rnd.random() < mistakes
        for ref, ans in base.items():
            out[f"{ref}/{i}"] = dict(ans)
        if broken:
            # the mistakes officers make: text in a number cell, a status not in the list
            out[f"EHCS PM29/{i}" if f"EHCS PM29/{i}" in out else f"CM PM03/{i}"]["actual"] = "about 56"
            out[f"GW 04/{i}"]["status"] = "Done"
    return out


def run_cli(args: list[str], env: dict | None = None) -> dict:
    """Run a command through measure.py; its figures, with ``tree_mb``: the most memory the
    command and all its processes (workers, the fork server) held at once, as the sum of
    their proportional set sizes (shared pages counted once), sampled every 0.1 s from here."""
    proc = subprocess.Popen([sys.executable, str(HERE / "measure.py"), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    tree_kb = 0
    stderr: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True)
    reader.start()
    while proc.poll() is None:
        tree_kb = max(tree_kb, _tree_pss_kb(proc.pid))
        time.sleep(0.1)
    reader.join()
    err = "".join(stderr)
    line = [l for l in err.splitlines() if l.startswith("BENCH ")]
    if not line:
        raise RuntimeError(f"{' '.join(args)} failed:\n{err[-2000:]}")
    return {**json.loads(line[-1][6:]), "tree_mb": tree_kb / 1024}


def _tree_pss_kb(root: int) -> int:
    """The summed Pss of ``root`` and its descendants now (Linux; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def write_datamap(register, path: Path) -> int:
    """A datamap (datamaps' list of cells to collect) naming every input cell derbyxl reads:
    each item's inputs on its sheet, and the sign-off on the Cover. Every return of the
    benchmark has the same layout, so one datamap serves them all. Returns its line count."""
    from xlsxwriter.utility import xl_col_to_name

    from derbyxl.spec import COVER_SHEET, SIGN_OFF, kinds_present

    items = register.for_portfolio(register.portfolios[0])
    lines = [(s.caption, COVER_SHEET, s.cell, "DATE" if s.dtype == "date" else "TEXT") for s in SIGN_OFF]
    for spec in kinds_present(items):
        for row, item in enumerate((i for i in items if i.kind == spec.kind), start=2):
            ref = item.ref.rsplit("/", 1)[0]
            for col in spec.inputs:
                kind = "NUMBER" if col.dtype in ("number", "whole") else "TEXT"
                lines.append((f"{ref} {col.caption}", spec.name, f"{xl_col_to_name(spec.index(col.key))}{row}", kind))
    with open(path, "w", newline="", encoding="ascii", errors="replace") as fh:
        w = csv.writer(fh)
        w.writerow(["cell_key", "template_sheet", "cellreference", "type"])
        w.writerows(lines)
    return len(lines)


def run_datamaps(work: Path, register) -> dict | None:
    """``datamaps import templates -m`` over the same returns, with a datamap of the same
    input cells, in a home folder of its own (datamaps keeps its configuration and writes its
    master under ~/Documents/datamaps)."""
    try:
        import datamaps  # noqa: F401
    except ImportError:
        return None
    datamap = work / "datamap.csv"
    cells = write_datamap(register, datamap)
    home = work / "datamaps-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "XDG_DATA_HOME": str(home / ".local" / "share")}
    run_cli(["--datamaps", "config", "show-file"], env=env)  # writes its default configuration
    result = run_cli(["--datamaps", "import", "templates", "-m", "--inputdir", str(work / "returns"), "-d", str(datamap)], env=env)
    master = home / "Documents" / "datamaps" / "output" / "master.xlsx"
    return {**result, "datamap_cells": cells, "master_written": master.exists()}


def calamine_floor(files: list[Path]) -> float:
    import python_calamine as pc

    start = time.perf_counter()
    for f in files:
        wb = pc.CalamineWorkbook.from_path(str(f))
        for name in wb.sheet_names:
            wb.get_sheet_by_name(name).to_python()
        wb.close()
    return time.perf_counter() - start


def xlsxwriter_floor(cells: int, path: Path) -> float:
    import xlsxwriter

    start = time.perf_counter()
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    ws = wb.add_worksheet()
    cols = 18
    for r in range(cells // cols):
        for c in range(cols):
            ws.write_string(r, c, "x") if c % 2 else ws.write_number(r, c, r)
    wb.close()
    return time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--returns", type=int, default=1000)
    ap.add_argument("--mistakes", type=float, default=0.05, help="share of returns with officers' mistakes")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--no-datamaps", action="store_true", help="leave datamaps out even when it is installed")
    ap.add_argument("--register-portfolios", type=int, default=300, help="register load: copies of the sample's 199 items as .csv and .xlsx (300: 59,700 items; 0 leaves it out)")
    ap.add_argument("--repeat", type=int, default=1, help="run validate, consolidate and validate again this many times (from no history each time) and report the median run of each")
    args = ap.parse_args(argv)
    n = args.returns
    work = args.out
    if work.exists():
        shutil.rmtree(work)
    (work / "returns").mkdir(parents=True)
    register_path = build_register(n, work / "register.csv")
    register = load_register(register_path)
    answers = answers_for(n, args.mistakes)

    from derbyxl.runner import Runner

    common = ["--register", str(register_path), "--period", PERIOD.key]
    # Templates, as an officer makes them: the command, in a process of its own.
    templates = run_cli(["templates", *common, "--out", str(work / "templates")])
    t_templates = templates["wall"]
    portfolios = register.portfolios
    with Runner(setup=_fill_setup, setup_args=(register, answers, work / "returns")) as runner:
        runner.run(_fill_one, [(p,) for p in portfolios])
    files = sorted((work / "returns").glob("*.xlsx"))

    floor_read = calamine_floor(files)
    history = ["--history", str(work / "outputs" / "history.sqlite")]
    runs: dict[str, list[dict]] = {"validate": [], "consolidate": [], "validate_again": []}
    for _ in range(max(1, args.repeat)):
        shutil.rmtree(work / "outputs", ignore_errors=True)  # no history, no cache: a first run
        runs["validate"].append(run_cli(["validate", str(work / "returns"), *common, *history, "--json", str(work / "findings.json")]))
        runs["consolidate"].append(run_cli(["consolidate", str(work / "returns"), *common, "--out", str(work / "outputs"), *history]))
        # The same check again, as an officer re-runs it: every file is in the cache by now.
        runs["validate_again"].append(run_cli(["validate", str(work / "returns"), *common, *history, "--json", str(work / "findings-again.json")]))
        findings = json.loads((work / "findings.json").read_text())
        if json.loads((work / "findings-again.json").read_text()) != findings:
            raise RuntimeError("the cached second validation found something else than the first")
    # The median run of each step (this machine is shared: single runs vary by about 10%).
    validate, consolidate, validate_again = (sorted(r, key=lambda m: m["wall"])[(len(r) - 1) // 2] for r in runs.values())
    floor_write = xlsxwriter_floor(n * 199 * 18, work / "floor.xlsx")

    datamaps = None if args.no_datamaps else run_datamaps(work, register)

    from register_load import measure as measure_register_load
    from register_load import report as report_register_load

    register_load = measure_register_load(args.register_portfolios, work / "register-load", max(1, args.repeat)) if args.register_portfolios else None

    total = validate["wall"] + consolidate["wall"]
    result = {
        "returns": n,
        "items": len(register.items),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "repeats": max(1, args.repeat),
        "walls": {step: [m["wall"] for m in r] for step, r in runs.items()},
        "templates": {**templates, "per_return_ms": 1000 * t_templates / n},
        "validate": {**validate, "per_return_ms": 1000 * validate["wall"] / n, "ratio_to_read_floor": validate["wall"] / floor_read},
        "consolidate": {**consolidate, "per_return_ms": 1000 * consolidate["wall"] / n, "ratio_to_floor": consolidate["wall"] / (floor_read + floor_write)},
        "validate_again_cached": {**validate_again, "per_return_ms": 1000 * validate_again["wall"] / n, "ratio_to_read_floor": validate_again["wall"] / floor_read},
        "validate_plus_consolidate": total,
        "floor": {"calamine_read": floor_read, "xlsxwriter_write": floor_write},
        "findings": {"errors": sum(f["severity"] == "error" for f in findings), "warnings": sum(f["severity"] == "warning" for f in findings)},
        "datamaps": datamaps,
        "datamaps_over_derbyxl": (datamaps["wall"] / total) if datamaps else None,
        "register_load": register_load,
    }
    (work / "bench.json").write_text(json.dumps(result, indent=2))
    # cpu s: the command's own and its direct children's (workers of the fork server are not
    # its children: their time is not in it). peak RSS: the command's process; all processes:
    # the most the command and every process it started held at once (summed Pss).
    print(f"{'step':<26}{'wall s':>9}{'cpu s':>8}{'ms/return':>11}{'peak RSS MB':>13}{'all procs MB':>14}{'x floor':>9}")
    print(f"{'templates':<26}{t_templates:>9.2f}{templates['cpu']:>8.2f}{result['templates']['per_return_ms']:>11.1f}{templates['rss_mb']:>13.0f}{templates['tree_mb']:>14.0f}{'':>9}")
    for label, key, ratio in (
        ("validate", "validate", "ratio_to_read_floor"),
        ("consolidate", "consolidate", "ratio_to_floor"),
        ("validate again (cached)", "validate_again_cached", "ratio_to_read_floor"),
    ):
        step = result[key]
        print(f"{label:<26}{step['wall']:>9.2f}{step['cpu']:>8.2f}{step['per_return_ms']:>11.1f}{step['rss_mb']:>13.0f}{step['tree_mb']:>14.0f}{step[ratio]:>9.1f}")
    if datamaps:
        print(f"{'datamaps import -m':<26}{datamaps['wall']:>9.2f}{datamaps['cpu']:>8.2f}{1000 * datamaps['wall'] / n:>11.1f}{datamaps['rss_mb']:>13.0f}")
    print(f"{'floor: calamine read':<26}{floor_read:>9.2f}{'':>8}{1000 * floor_read / n:>11.1f}")
    print(f"{'floor: xlsxwriter write':<26}{floor_write:>9.2f}")
    print(f"validate + consolidate: {total:.2f} s for {n} returns; findings: {result['findings']}")
    if args.repeat > 1:
        print(f"median of {args.repeat} runs; all walls: " + "; ".join(f"{k} " + ", ".join(f"{w:.2f}" for w in v) for k, v in result["walls"].items()))
    if datamaps:
        print(f"datamaps ({datamaps['datamap_cells']} cells a return, master written: {datamaps['master_written']}) took {result['datamaps_over_derbyxl']:.1f}x as long as derbyxl's validate + consolidate")
    else:
        print("datamaps: left out (--no-datamaps)" if args.no_datamaps else "datamaps: not installed (pip install datamaps, or make bench)")
    if register_load:
        report_register_load(register_load)
    print(f"written {work / 'bench.json'}")
    return result


if __name__ == "__main__":
    main()
