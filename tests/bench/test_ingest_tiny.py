"""``bench/ingest_tiny.py`` runs end to end at a tiny size: the floor and ``ledger ingest
--processor noop`` finish every file, and the report holds the figures docs/benchmarks.md
quotes (wall time, docs/s, CPU of the process, peak RSS of the tree, the ratio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tiny_files_benchmark_runs_floor_and_ledger_on_the_same_files(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "bench" / "ingest_tiny.py"), "--files", "30"]
    proc = subprocess.run(
        [*command, "--rounds", "1", "--json", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(report.read_text())
    [round_] = result["rounds"]
    floor, ledger = round_["floor"], round_["ledger"]
    assert floor["output"]["done"] == 30
    assert ledger["output"]["batch"]["counts"]["done"] == 30
    for run in (floor, ledger):
        assert run["seconds"] > 0 and run["peak_tree_rss"] > 0
    assert ledger["cpu_seconds"]["main"] > 0
    assert round_["ratios"]["ledger"] > 0
    assert result["median_docs_per_second"]["ledger"] > 0
