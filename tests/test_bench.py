"""A CI-sized smoke run of the benchmark: it runs and its output is well formed (timings are
reported by the benchmark, never asserted here)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench
def test_benchmark_smoke(tmp_path):
    out = tmp_path / "bench"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--returns", "6", "--mistakes", "0.5", "--repeat", "1", "--register-portfolios", "2", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((out / "bench.json").read_text())
    assert data["returns"] == 6 and data["items"] == 6 * 199
    assert data["templates"]["code"] == 0 and len(list((out / "templates").glob("*.xlsx"))) == 6
    for step in ("validate", "consolidate", "validate_again_cached"):
        assert data[step]["wall"] > 0 and data[step]["rss_mb"] > 0 and data[step]["tree_mb"] > 0
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
