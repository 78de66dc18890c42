"""Run every benchmark with its full size, one after another.

Run: python bench/run_all.py [--quick] [--only NAME ...] [--corpus DIR] [--postgres]

Each benchmark prints its tables and writes bench/results/<name>.json. ``--quick`` runs
each with a small size (seconds, not minutes): a check that they work, not figures.
``--corpus DIR`` adds the real-document ingest benchmark (building the corpus in DIR
first when it is not there: see corpus.py, which needs Debian's documentation packages,
``--install`` there); ``--postgres`` adds the PostgreSQL workers benchmark (a server at
the one its --url names by default).
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
    "retention": ([], ["--batches", "2", "--docs", "1000"]),
    "deletion": ([], ["--docs", "1000"]),
    "startup": ([], ["--runs", "1"]),
    "export": ([], ["--chunks", "2000"]),
    # Without --corpus: the 1 GB upload into the store only (moto on loopback).
    "object_store": ([], ["--upload-mb", "20"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    names = [*BENCHMARKS, "corpus", "ingest", "postgres_workers"]
    parser.add_argument("--only", nargs="+", choices=names, default=None)
    parser.add_argument("--corpus", type=Path, default=None, help="run ingest.py on it")
    parser.add_argument("--postgres", action="store_true", help="run postgres_workers.py")
    args = parser.parse_args()
    benchmarks = dict(BENCHMARKS)
    if args.corpus is not None:
        corpus = str(args.corpus)
        benchmarks["corpus"] = ([corpus], [corpus])
        benchmarks["ingest"] = ([corpus], [corpus])
        quick_store = ["--corpus", corpus, "--upload-mb", "20"]
        benchmarks["object_store"] = (["--corpus", corpus], quick_store)
    if args.postgres:
        benchmarks["postgres_workers"] = ([], ["--documents", "500"])
    missing = [n for n in args.only or [] if n not in benchmarks]
    if missing:
        parser.error(f"{', '.join(missing)}: needs --corpus (corpus, ingest) or --postgres")
    failed = []
    for name in args.only or benchmarks:
        full, quick = benchmarks[name]
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
