"""``ledger ingest`` of many tiny files with the ``noop`` processor, against its floor.

    python bench/ingest_tiny.py [--files 20000] [--rounds 3] [--baseline DIR] [--json PATH]

Issue 14's target (a): ``ledger ingest DIR --processor noop`` of 20,000 tiny text files,
start-up included, at 8,000 docs/s or more. Each round runs, one after the other:

- **floor**: a fresh Python process that walks the folder, stats every file, inserts one
  row per file (path, size, mtime, status) into a fresh SQLite file in one transaction with
  raw ``sqlite3``, then marks the rows done in transactions of 256. No ledger: no batch,
  leases, attempts, events or counters.
- **ledger**: ``python -m ledger ingest DIR --processor noop --json`` with a fresh
  ``LEDGER_HOME`` (the database created by the command).

Both are timed from process start to exit (interpreter start and imports included), with
the CPU seconds of the process and the peak RSS of its tree (see ``ingest_cli.py``).
``--baseline DIR`` runs another checkout's ledger in the same rounds, each round starting
with another contender. ``--processor ingest`` runs the ledger with the default processor
(each file read, chunked and indexed) against the same floor, which does none of that.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DONE_GROUP = 256


def make_files(folder: Path, count: int) -> None:
    """``count`` files of a line each, 1,000 to a sub-folder."""
    for number in range(count):
        sub = folder / f"d{number // 1000:03d}"
        if number % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"f{number:06d}.txt").write_text(f"tiny document {number}\n")


def floor_child(folder: Path, work: Path) -> None:
    """The floor's process: walk, stat, one row per file, then every row done."""
    work.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(work / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE documents (id INTEGER PRIMARY KEY, source TEXT UNIQUE, size INTEGER,"
        " mtime_ns INTEGER, status TEXT NOT NULL)"
    )
    rows = []
    for root, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            st = os.stat(path)
            rows.append((path, st.st_size, st.st_mtime_ns, "pending"))
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO documents (source, size, mtime_ns, status) VALUES (?, ?, ?, ?)", rows
    )
    conn.execute("COMMIT")
    ids = [row[0] for row in conn.execute("SELECT id FROM documents ORDER BY id")]
    for start in range(0, len(ids), DONE_GROUP):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE documents SET status = 'done' WHERE id = ?",
            ((i,) for i in ids[start : start + DONE_GROUP]),
        )
        conn.execute("COMMIT")
    done = conn.execute("SELECT count(*) FROM documents WHERE status = 'done'").fetchone()[0]
    conn.close()
    print(json.dumps({"done": done}))


def floor_run(folder: Path, work: Path, checkout: Path) -> dict[str, Any]:
    from ingest_cli import _env, run_tree

    command = [sys.executable, str(Path(__file__)), str(folder), "--floor-child", str(work)]
    return run_tree(command, _env(checkout))


def ledger_run(folder: Path, work: Path, checkout: Path, processor: str = "noop") -> dict[str, Any]:
    from ingest_cli import _env, run_tree

    env = _env(checkout, LEDGER_HOME=str(work / "home"))
    # -P: the working directory's ledger (``-m`` puts it first) must not stand in for it.
    command = [sys.executable, "-P", "-m", "ledger", "ingest", str(folder), "--processor"]
    command.append(processor)
    return run_tree([*command, "--json"], env)


def done_of(run: dict[str, Any]) -> int:
    output = run["output"]
    return int(output["batch"]["counts"]["done"] if "batch" in output else output["done"])


def describe(run: dict[str, Any]) -> str:
    return (
        f"{run['seconds']:.2f} s, {done_of(run) / run['seconds']:,.0f} docs/s, CPU s main "
        f"{run['cpu_seconds']['main']:.2f} + children {run['cpu_seconds']['others']:.2f}, "
        f"peak tree RSS {run['peak_tree_rss'] / 2**20:.0f} MiB ({done_of(run):,} done)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/results/ingest_tiny.json"))
    parser.add_argument(
        "--baseline", type=Path, help="another checkout's ledger to run too (figures before)"
    )
    parser.add_argument(
        "--processor",
        default="noop",
        help="the ledger's processor: noop (the target's) or ingest (read, chunk, index)",
    )
    parser.add_argument("--floor-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(args.folder, args.floor_child)
        return
    sys.path.insert(0, str(BENCH))
    from harness import machine

    ledger = functools.partial(ledger_run, processor=args.processor)
    runs: dict[str, tuple[Any, Path]] = {"floor": (floor_run, REPO), "ledger": (ledger, REPO)}
    if args.baseline is not None:
        runs["baseline ledger"] = (ledger, args.baseline)
    names = list(runs)
    before = machine()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-tiny-") as scratch:
        folder = Path(scratch) / "tiny"
        make_files(folder, args.files)
        warm = Path(scratch) / "warm"
        make_files(warm, 10)
        for number, (run, checkout) in enumerate(runs.values()):  # bytecode caches
            run(warm, Path(scratch) / f"warm{number}", checkout)
        for number in range(args.rounds):
            results: dict[str, Any] = {}
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                run, checkout = runs[name]
                with tempfile.TemporaryDirectory(prefix="ledger-bench-tiny-") as work:
                    results[name] = run(folder, Path(work), checkout)
            ratios = {
                name: results["floor"]["seconds"] / results[name]["seconds"]
                for name in names
                if name != "floor"
            }
            print(f"round {number + 1} (load {os.getloadavg()[0]:.2f}):", flush=True)
            for name in names:
                ratio = f"; floor/ledger {ratios[name]:.2f}" if name in ratios else ""
                print(f"  {name}: {describe(results[name])}{ratio}", flush=True)
            rounds.append({**results, "ratios": ratios})
    seconds = {name: statistics.median(r[name]["seconds"] for r in rounds) for name in names}
    rates = {name: args.files / value for name, value in seconds.items()}
    medians = {
        name: statistics.median(r["ratios"][name] for r in rounds) for name in rounds[0]["ratios"]
    }
    print(
        f"{args.files:,} files; medians: "
        + ", ".join(f"{n} {seconds[n]:.2f} s ({rates[n]:,.0f} docs/s)" for n in names)
        + "; floor/ledger "
        + ", ".join(f"{n} {v:.2f}" for n, v in medians.items())
        + f"; load before {before['load_average']}, after "
        + f"{[round(x, 2) for x in os.getloadavg()]}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": before, "files": args.files, "processor": args.processor,
              "rounds": rounds,
              "median_seconds": seconds, "median_docs_per_second": rates,
              "median_ratios": medians, "load_average_after": os.getloadavg()}  # fmt: skip
    args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
