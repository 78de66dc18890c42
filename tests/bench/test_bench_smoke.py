"""Every benchmark script runs end to end at a tiny size, so none of them can rot.

The real runs are manual (``python bench/run_all.py``); this only checks that each script
works, prints its tables and writes its JSON results.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quick_arguments() -> dict[str, list[str]]:
    spec = importlib.util.spec_from_file_location("bench_run_all", ROOT / "bench" / "run_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: quick for name, (_full, quick) in module.BENCHMARKS.items()}


QUICK = quick_arguments()


@pytest.mark.parametrize("name", sorted(QUICK))
def test_benchmark_runs_at_a_tiny_size(name: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "LEDGER_BENCH_RESULTS": str(tmp_path),
        "LEDGER_HOME": str(tmp_path / "home"),
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), *QUICK[name]],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| " in proc.stdout  # printed a table
    result = json.loads((tmp_path / f"{name}.json").read_text())
    assert result["benchmark"] == name
    assert result["machine"]["cores"]
    assert result["sections"]
    assert all(section["rows"] for section in result["sections"])
