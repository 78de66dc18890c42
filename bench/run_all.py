"""Run every benchmark with its full size, one after another.

Run: python bench/run_all.py [--quick] [--only NAME ...]

Each benchmark prints its tables and writes bench/results/<name>.json. ``--quick`` runs
each with a small size (seconds, not minutes): a check that they work, not figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# name -> (full-size arguments, quick arguments)
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "ledger_overhead": ([], ["--docs", "2000"]),
    "concurrency": ([], ["--levels", "1", "10", "50", "--rounds", "3", "--seconds", "0.01"]),
    "submit": ([], ["--docs", "2000", "--repeat", "1"]),
    "status_scale": ([], ["--docs", "3000", "--requests", "10", "--cli", "1"]),
    "memory": ([], ["--sizes", "1000", "2000", "--ingest-mb", "1"]),
    "restart": ([], ["--docs", "3000", "--expired", "500", "--floor-runs", "1"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args()
    failed = []
    for name in args.only or BENCHMARKS:
        full, quick = BENCHMARKS[name]
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        code = subprocess.call(
            [sys.executable, str(BENCH / f"{name}.py"), *(quick if args.quick else full)]
        )
        print(f"\n({name}: {time.perf_counter() - started:.0f} s, exit {code})", flush=True)
        if code:
            failed.append(name)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
