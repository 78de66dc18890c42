"""``bench/ingest_cli.py`` runs end to end on a tiny folder: the floor process and
``ledger ingest`` index the same files, and the report holds what docs/benchmarks.md quotes
(wall time, CPU of the tree, peak RSS of the tree, the ratio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ingest import fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_ingest_benchmark_runs_floor_and_ledger_on_the_same_files(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number in range(2):
        fx.make_html(
            corpus / f"page{number}.html", fx.paragraphs(number, 6), title=f"Page {number}"
        )
    report = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, str(ROOT / "bench" / "ingest_cli.py"), str(corpus)]
    proc = subprocess.run(
        [*command, "--rounds", "1", "--workers", "1", "--json", str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [round_] = json.loads(report.read_text())["rounds"]
    floor, ledger = round_["floor"], round_["ledger"]
    assert floor["output"]["failed"] == 0 and floor["output"]["chunks"] >= 2
    assert ledger["output"]["batch"]["counts"]["done"] == 2
    for run in (floor, ledger):
        assert run["seconds"] > 0 and run["peak_tree_rss"] > 0
        assert run["cpu_seconds"]["main"] > 0
    assert round_["ratios"]["ledger"] > 0
