"""``ledger ingest`` of a folder as a whole process, against its floor, interleaved.

    python bench/ingest_cli.py CORPUS [--workers 2] [--rounds 3] [--baseline DIR] [--json PATH]

CORPUS is any folder; issue 14's target is the two-package corpus that
``bench/two_package_corpus.py`` builds (530 HTML pages, 85 PDFs). Each round runs, one
after the other:

- **floor**: a fresh Python process that parses and chunks every file with the ledger's own
  ``process_file`` (the same parsers and chunker) in ``--workers`` spawned processes, and
  inserts each file's chunks, as they arrive, into a fresh SQLite file holding the ledger's
  full-text index (the same FTS5 definition and trigger) with raw ``sqlite3``, one
  transaction per file. No ledger: no documents, leases, attempts or dedup.
- **ledger**: ``python -m ledger ingest CORPUS --json`` with a fresh ``LEDGER_HOME`` (the
  database created and migrated by the command) and ``LEDGER_PROCESS_WORKERS=--workers``.

With ``--baseline DIR`` (another checkout of the project, e.g. ``git archive`` of the
commit before a change), each round also runs that checkout's floor and ledger, so before
and after are measured interleaved in one run; each round starts with another of them.

All are timed from process start to exit, so all include an interpreter start and their
imports. Peak memory is the largest sum of the resident set sizes of the process and all
its descendants, sampled with psutil every 20 ms (RUSAGE_CHILDREN would give the largest
single process, not the tree). A sum of RSS counts pages shared between processes (the
interpreter's own) once per process, so it is an upper bound of what the tree holds.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Only what the floor's pool children need is imported at the top: a spawned child imports
# this script again, and the harness (the ledger's settings) would add to the floor's work.
REPO = Path(__file__).resolve().parents[1]

SAMPLE_SECONDS = 0.02

FTS_SCHEMA = (
    "CREATE TABLE chunks (id INTEGER PRIMARY KEY, document_id INTEGER, text TEXT)",
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks',"
    " content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
    " INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END",
)


def corpus_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _parse_one(job: tuple[str, str]) -> tuple[str, int]:
    from ledger.processors.ingest import IngestOptions, process_file

    path, spool_dir = job
    try:
        outcome = process_file(
            path, expected_size=None, expected_mtime_ns=None, expected_sha256=None,
            options=IngestOptions(), spool_dir=spool_dir,
        )  # fmt: skip
    except Exception:  # a file the parsers refuse counts as failed in the ledger too
        return "", 0
    return outcome.spool_path, outcome.chunks


def floor_child(corpus: Path, work: Path, workers: int) -> None:
    """The floor's process: parse + chunk in ``workers`` processes, index as they arrive."""
    from ledger.processors.ingest.spool import iter_spool

    spool_dir = work / "spool"
    spool_dir.mkdir(parents=True)
    conn = sqlite3.connect(work / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in FTS_SCHEMA:
        conn.execute(statement)
    jobs = [(str(p), str(spool_dir)) for p in corpus_files(corpus)]
    chunks = failed = 0
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for number, (spool, count) in enumerate(pool.imap_unordered(_parse_one, jobs)):
            if not spool:
                failed += 1
                continue
            conn.execute("BEGIN IMMEDIATE")
            for batch in iter_spool(spool):
                conn.executemany(
                    "INSERT INTO chunks (document_id, text) VALUES (?, ?)",
                    ((number, chunk.text) for chunk in batch),
                )
            conn.execute("COMMIT")
            os.unlink(spool)
            chunks += count
    conn.close()
    print(json.dumps({"chunks": chunks, "failed": failed}))


def run_tree(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``command`` to its end: wall seconds and the peak RSS sum of its process tree."""
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    cpu: dict[int, float] = {}  # the last CPU seconds sampled of each process of the tree
    while proc.poll() is None:
        total = 0
        try:
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            members = []
        for member in members:
            try:
                with member.oneshot():
                    total += member.memory_info().rss
                    times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            cpu[member.pid] = times.user + times.system
        peak = max(peak, total)
        time.sleep(SAMPLE_SECONDS)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{command} exited {proc.returncode}: {err.decode()[-3000:]}")
    text = out.decode()
    summary = json.loads(text[text.index("{") :])  # both print one JSON object, maybe indented
    return {
        "seconds": seconds,
        "peak_tree_rss": peak,
        "cpu_seconds": {
            "main": cpu.get(proc.pid, 0.0),
            "others": sum(cpu.values()) - cpu.get(proc.pid, 0.0),
        },
        "output": summary,
    }


def _env(checkout: Path, **extra: str) -> dict[str, str]:
    """The children import ``checkout``'s ledger, and write and reuse bytecode caches, as
    an installed package has them."""
    env = {**os.environ, "PYTHONPATH": str(checkout), **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def floor_run(corpus: Path, work: Path, workers: int, checkout: Path) -> dict[str, Any]:
    script = checkout / "bench" / Path(__file__).name
    command = [sys.executable, str(script), str(corpus), "--floor-child", str(work)]
    return run_tree([*command, "--workers", str(workers)], _env(checkout))


def ledger_run(corpus: Path, work: Path, workers: int, checkout: Path) -> dict[str, Any]:
    env = _env(checkout, LEDGER_HOME=str(work / "home"), LEDGER_PROCESS_WORKERS=str(workers))
    # -P: without it ``-m`` puts the working directory first on sys.path, and a run from
    # one checkout would import that checkout's ledger instead of ``checkout``'s.
    command = [sys.executable, "-P", "-m", "ledger", "ingest", str(corpus), "--json"]
    return run_tree(command, env)


def contenders(baseline: Path | None) -> dict[str, tuple[Any, Path]]:
    """What each round runs: the floor and ledger of this checkout, and of ``baseline``
    (another checkout, for before/after figures in one run) when given."""
    runs: dict[str, tuple[Any, Path]] = {"floor": (floor_run, REPO), "ledger": (ledger_run, REPO)}
    if baseline is not None:
        script = baseline / "bench" / Path(__file__).name
        if not script.exists():  # the floor child is this script, run from that checkout
            shutil.copy2(__file__, script)
        runs["baseline floor"] = (floor_run, baseline)
        runs["baseline ledger"] = (ledger_run, baseline)
    return runs


def warm_up(corpus: Path, workers: int, runs: dict[str, tuple[Any, Path]]) -> None:
    """One run of each on a single file first: the bytecode caches exist before timing."""
    with tempfile.TemporaryDirectory(prefix="ledger-bench-cli-") as work:
        one = Path(work) / "one"
        one.mkdir()
        for kind in ("html", "pdf"):
            first = next(iter(sorted(corpus.rglob(f"*.{kind}"))), None)
            if first is not None:
                (one / first.name).write_bytes(first.read_bytes())
        for number, (run, checkout) in enumerate(runs.values()):
            run(one, Path(work) / str(number), workers, checkout)


def describe(run: dict[str, Any]) -> str:
    output = run["output"]
    counts = output["batch"]["counts"] if "batch" in output else output
    return (
        f"{run['seconds']:.2f} s, peak tree RSS {run['peak_tree_rss'] / 2**20:.0f} MiB, CPU s "
        f"main {run['cpu_seconds']['main']:.1f} + children {run['cpu_seconds']['others']:.1f}"
        f" ({counts})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/results/ingest_cli.json"))
    parser.add_argument(
        "--baseline", type=Path, help="another checkout to run too (figures before a change)"
    )
    parser.add_argument("--floor-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(args.corpus, args.floor_child, args.workers)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from harness import machine

    files = corpus_files(args.corpus)
    mb = sum(p.stat().st_size for p in files) / 1e6
    before = machine()
    runs = contenders(args.baseline)
    warm_up(args.corpus, args.workers, runs)
    names = list(runs)
    rounds: list[dict[str, Any]] = []
    for number in range(args.rounds):
        results: dict[str, Any] = {}
        shift = number % len(names)  # interleaved: each round starts with another contender
        for name in names[shift:] + names[:shift]:
            run, checkout = runs[name]
            with tempfile.TemporaryDirectory(prefix="ledger-bench-cli-") as work:
                results[name] = run(args.corpus, Path(work), args.workers, checkout)
        ratios = {
            ledger: results[ledger.replace("ledger", "floor")]["seconds"]
            / results[ledger]["seconds"]
            for ledger in names
            if ledger.endswith("ledger")
        }
        print(f"round {number + 1} (load {os.getloadavg()[0]:.2f}):", flush=True)
        for name in names:
            ratio = f"; floor/ledger {ratios[name]:.2f}" if name in ratios else ""
            print(f"  {name}: {describe(results[name])}{ratio}", flush=True)
        rounds.append({**results, "ratios": ratios})
    medians = {
        name: statistics.median(r["ratios"][name] for r in rounds) for name in rounds[0]["ratios"]
    }
    seconds = {name: statistics.median(r[name]["seconds"] for r in rounds) for name in names}
    print(f"{len(files)} files, {mb:.1f} MB, {args.workers} pool processes, "
          f"{os.cpu_count()} CPUs; medians: seconds {fmt_all(seconds)}, floor/ledger "
          f"{fmt_all(medians)}; load before {before['load_average']}, after "
          f"{[round(x, 2) for x in os.getloadavg()]}")  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": before, "files": len(files), "mb": mb, "workers": args.workers,
              "rounds": rounds, "median_ratios": medians, "median_seconds": seconds,
              "load_average_after": os.getloadavg()}  # fmt: skip
    args.json.write_text(json.dumps(report, indent=2, default=str))


def fmt_all(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in values.items())


if __name__ == "__main__":
    main()
