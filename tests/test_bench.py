"""A CI-sized smoke run of the benchmark: it runs and its output is well formed (timings are
reported by the benchmark, never asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke(tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--returns", "12", "--mistakes", "0.5", "--repeat", "2", "--register-portfolios", "2", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "bench.json").read_text())
    assert data["returns"] == 12 and data["items"] == 12 * 199
    # Two runs of each command; the one reported is one of them (the median, low of two).
    assert data["repeats"] == 2 and all(len(walls) == 2 for walls in data["walls"].values())
    assert data["validate"]["wall"] == min(data["walls"]["validate"])
    assert data["templates"]["code"] == 0 and data["templates"]["wall"] > 0 and data["templates"]["cpu"] > 0
    assert len(list((out / "templates").glob("*.xlsx"))) == 12
    for step in ("validate", "consolidate", "validate_again_cached"):
        assert data[step]["wall"] > 0 and data[step]["cpu"] > 0 and data[step]["rss_mb"] > 0 and data[step]["per_return_ms"] > 0
    for step in ("validate", "validate_again_cached"):
        assert data[step]["ratio_to_read_floor"] == data[step]["wall"] / data["floor"]["calamine_read"]
    assert data["validate_plus_consolidate"] == data["validate"]["wall"] + data["consolidate"]["wall"]
    assert data["floor"]["calamine_read"] > 0 and data["floor"]["xlsxwriter_write"] > 0
    if data["datamaps"] is not None:  # installed by `make bench`; optional here
        assert data["datamaps"]["master_written"] and data["datamaps"]["datamap_cells"] > 500
        assert data["datamaps_over_derbyxl"] > 0
    # validate found the planted mistakes (exit 1), consolidate still wrote the master (exit 0)
    assert data["validate"]["code"] == 1 and data["consolidate"]["code"] == 0
    assert data["findings"]["errors"] > 0
    assert (out / "outputs" / "master_2024-25-Q4.xlsx").exists()
    assert "validate + consolidate" in r.stdout
    load = data["register_load"]
    assert load["csv"]["items"] == load["xlsx"]["items"] == 2 * 199 and load["xlsx_over_csv"] > 0
    assert "register load (398 items" in r.stdout
