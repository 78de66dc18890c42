"""Ingest through the ledger versus the parse-only floor, on the benchmark corpus.

    python bench/ingest.py bench/corpus/data [--workers 2] [--json bench/results/ingest.json]

Three runs in one process, same files, same parsers, same pool size:

- floor: ``process_file`` over every file in a ProcessPool, spools deleted, no database;
- ingest: a fresh SQLite ledger, submit (one stat per file), a Worker until complete
  (dedup lookups, hashing, extraction in the pool, chunks + FTS stored with the outcome);
- re-run: a second batch over the same unchanged files (skipped at submit by size and
  mtime, as ``ledger ingest`` and the API submit);
- kill: a fresh ledger, the same files processed by a ``ledger worker`` process that is
  killed with SIGKILL once half the documents are done, then a second worker finishes the
  batch. SQL then counts the work redone: documents done twice (must be 0), documents done
  before the kill that were processed again (must be 0), attempts the kill cost (the
  documents in flight), and duplicated chunks (must be 0).

Prints a table and writes JSON. Peak RSS: this process, and the largest pool child.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import child_env

from ledger.app import Ledger
from ledger.errors import ProcessingError
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.builtin import unchanged_skip
from ledger.processors.ingest import IngestOptions, process_file
from ledger.processors.ingest.spool import iter_spool
from ledger.settings import Settings
from ledger.states import DocumentStatus
from ledger.worker.pool import ProcessPool
from ledger.worker.runtime import Worker

MEMORY_LIMIT_MB = 2048


def corpus_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json")


async def floor(files: list[Path], workers: int, spool: Path) -> dict[str, Any]:
    os.makedirs(spool, exist_ok=True)
    failed = 0
    chunks = 0
    spools: list[str] = []
    started = time.perf_counter()
    async with ProcessPool(workers, memory_limit_bytes=MEMORY_LIMIT_MB * 2**20) as pool:

        async def one(path: Path) -> None:
            nonlocal failed, chunks
            job = functools.partial(
                process_file, str(path), expected_size=None, expected_mtime_ns=None,
                expected_sha256=None, options=IngestOptions(), spool_dir=str(spool),
            )  # fmt: skip
            try:
                outcome = await pool.run(job, timeout=300)
            except ProcessingError:
                failed += 1
                return
            chunks += outcome.chunks
            spools.append(outcome.spool_path)

        await asyncio.gather(*(one(p) for p in files))
    parsed = time.perf_counter() - started
    index_seconds = index_floor(spools, spool / "index-floor.db")
    return {
        "seconds": parsed,
        "index_seconds": index_seconds,
        "failed": failed,
        "chunks": chunks,
    }


def index_floor(spools: list[str], db: Path) -> float:
    """The floor of indexing: the parsed chunks inserted with raw sqlite3 into a table with
    the ledger's full-text index (the same FTS5 definition and trigger), one transaction
    per document, no ledger. Indexing is one writer's work on either database."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, document_id INTEGER, text TEXT)")
    conn.execute(
        "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks',"
        " content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    conn.execute(
        "CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
        " INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END"
    )
    started = time.perf_counter()
    for number, path in enumerate(spools):
        for batch in iter_spool(path):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO chunks (document_id, text) VALUES (?, ?)",
                ((number, chunk.text) for chunk in batch),
            )
            conn.execute("COMMIT")
        os.unlink(path)
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def scan(files: list[Path]) -> list[SourceSpec]:
    specs = []
    for path in files:
        st = path.stat()
        specs.append(SourceSpec(str(path), size=st.st_size, mtime_ns=st.st_mtime_ns))
    return specs


async def through_ledger(
    ledger: Ledger, files: list[Path], batch_id: str, concurrency: int
) -> dict[str, Any]:
    started = time.perf_counter()
    spec = BatchSpec(id=batch_id, processor="ingest")
    # As ``ledger ingest`` and the API submit: sources indexed unchanged are skipped at once.
    await ledger.queue.submit(spec, scan(files), skip_unchanged=unchanged_skip(spec))
    submitted = time.perf_counter()
    await Worker(ledger, batch_ids=[batch_id], concurrency=concurrency).run(until_complete=True)
    finished = time.perf_counter()
    batch = await ledger.reads.batch(batch_id)
    return {
        "seconds": finished - started,
        "submit_seconds": submitted - started,
        "counts": {s.value: n for s, n in batch.counts.items() if n},
    }


KILL_LEASE_SECONDS = 10  # the killed worker's leases run out this soon: bounds the wait


def _worker_process(home: Path, batch_id: str, workers: int, concurrency: int) -> Any:
    env = child_env(
        LEDGER_HOME=str(home),
        LEDGER_PROCESS_WORKERS=str(workers),
        LEDGER_TASK_MEMORY_LIMIT_MB=str(MEMORY_LIMIT_MB),
        LEDGER_LEASE_SECONDS=str(KILL_LEASE_SECONDS),
        LEDGER_POLL_SECONDS="0.05",
    )
    command = [sys.executable, "-m", "ledger", "worker", "-b", batch_id, "-c", str(concurrency)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(db: Path, query: str, ready: Any, timeout: float = 3600) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            value = conn.execute(query).fetchone()[0]
        finally:
            conn.close()
        if ready(value):
            return value
        time.sleep(0.05)
    raise TimeoutError(query)


async def killed_half_way(
    files: list[Path], home: Path, workers: int, concurrency: int
) -> dict[str, Any]:
    """SIGKILL a worker half-way through the batch, finish with another, count the redone."""
    batch_id = "bench-kill"
    settings = Settings(home=home)
    async with await Ledger.open(settings, migrate=True) as ledger:
        await ledger.queue.submit(BatchSpec(id=batch_id, processor="ingest"), scan(files))
    db = home / "ledger.db"
    started = time.perf_counter()
    first = _worker_process(home, batch_id, workers, concurrency)
    try:
        _wait_for(db, "SELECT n_done + n_skipped FROM batches", lambda n: n >= len(files) // 2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = time.perf_counter()
    conn = sqlite3.connect(db, timeout=30)
    finished_before = {
        row[0]
        for row in conn.execute("SELECT id FROM documents WHERE status IN ('done', 'skipped')")
    }
    in_flight = conn.execute("SELECT count(*) FROM documents WHERE status = 'running'").fetchone()
    conn.close()
    second = _worker_process(home, batch_id, workers, concurrency)
    try:
        _wait_for(db, "SELECT completed_at IS NOT NULL FROM batches", bool)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=120)
    finished = time.perf_counter()
    conn = sqlite3.connect(db, timeout=30)
    try:

        def scalar(query: str) -> int:
            return int(conn.execute(query).fetchone()[0])

        ids = ",".join(str(i) for i in finished_before) or "NULL"
        report = {
            "seconds": finished - started,
            "seconds_to_kill": killed_at - started,
            "finished_before_kill": len(finished_before),
            "running_at_kill": in_flight[0],
            "lease_expired_attempts": scalar(
                "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired'"
            ),
            "attempts": scalar("SELECT count(*) FROM attempts"),
            "documents": scalar("SELECT count(*) FROM documents"),
            "done_twice": scalar(
                "SELECT count(*) FROM (SELECT document_id FROM attempts"
                " WHERE outcome IN ('done', 'skipped') GROUP BY 1 HAVING count(*) > 1)"
            ),
            "finished_before_kill_attempted_again": scalar(
                f"SELECT count(*) FROM (SELECT document_id FROM attempts WHERE document_id IN"
                f" ({ids}) GROUP BY 1 HAVING count(*) > 1)"
            ),
            "duplicated_chunks": scalar(
                "SELECT count(*) FROM (SELECT document_id, ordinal FROM chunks"
                " GROUP BY 1, 2 HAVING count(*) > 1)"
            ),
            "counts": dict(conn.execute("SELECT status, count(*) FROM documents GROUP BY 1")),
        }
    finally:
        conn.close()
    return report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    files = corpus_files(args.corpus)
    total_bytes = sum(p.stat().st_size for p in files)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    try:
        floor_run = await floor(files, args.workers, work / "floor-spool")
        settings = Settings(
            home=work / "home",
            process_workers=args.workers,
            task_memory_limit_mb=MEMORY_LIMIT_MB,
            poll_seconds=0.05,
        )
        async with await Ledger.open(settings, migrate=True) as ledger:
            first = await through_ledger(ledger, files, "bench-1", args.concurrency)
            again = await through_ledger(ledger, files, "bench-2", args.concurrency)
            async with ledger.runner.transaction(write=False) as conn:
                from sqlalchemy import text

                chunks = (await conn.execute(text("SELECT count(*) FROM chunks"))).scalar_one()
        db_bytes = sum(p.stat().st_size for p in (work / "home").glob("ledger.db*"))
        kill = await killed_half_way(files, work / "kill-home", args.workers, args.concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    mb = total_bytes / 1e6
    both = floor_run["seconds"] + floor_run["index_seconds"]
    rows = [
        ("floor (parse only, no DB)", floor_run["seconds"]),
        ("floor (index only, raw FTS5)", floor_run["index_seconds"]),
        ("floor (parse + index)", both),
        ("ingest through the ledger", first["seconds"]),
        ("re-run, unchanged", again["seconds"]),
    ]
    print(f"{len(files)} files, {mb:.1f} MB, {args.workers} pool processes, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'run':<28} {'s':>7} {'docs/s':>8} {'MB/s':>7}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:7.2f} {len(files) / seconds:8.1f} {mb / seconds:7.2f}")
    print(f"ingest / parse-only floor throughput: {floor_run['seconds'] / first['seconds']:.0%}; "
          f"ingest / parse + index floor: {both / first['seconds']:.0%}; "
          f"re-run / first run time: {again['seconds'] / first['seconds']:.1%}")  # fmt: skip
    print(f"ingest counts {first['counts']}, re-run counts {again['counts']}, chunks {chunks}, "
          f"floor chunks {floor_run['chunks']} (failed {floor_run['failed']})")  # fmt: skip
    redone = kill["attempts"] - kill["documents"]
    print(f"SIGKILL after {kill['finished_before_kill']} of {len(files)} finished: "
          f"{kill['running_at_kill']} were in flight; attempts beyond one per document "
          f"{redone}; finished before the kill and attempted again "
          f"{kill['finished_before_kill_attempted_again']}; done twice {kill['done_twice']}; "
          f"duplicated chunks {kill['duplicated_chunks']}; final {kill['counts']}")  # fmt: skip
    print(f"peak RSS: this process {self_rss / 2**20:.0f} MiB, largest pool child "
          f"{child_rss / 2**20:.0f} MiB; database {db_bytes / 2**20:.0f} MiB")  # fmt: skip
    report = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_1m": os.getloadavg()[0]},
        "corpus": {"files": len(files), "bytes": total_bytes},
        "workers": args.workers,
        "concurrency": args.concurrency,
        "floor": floor_run,
        "ingest": first,
        "rerun": again,
        "kill_half_way": kill,
        "chunks": chunks,
        "database_bytes": db_bytes,
        "peak_rss_bytes": {"self": self_rss, "largest_child": child_rss},
        "ratios": {
            "ingest_vs_floor_throughput": floor_run["seconds"] / first["seconds"],
            "ingest_vs_parse_and_index_floor": both / first["seconds"],
            "rerun_vs_first_time": again["seconds"] / first["seconds"],
        },
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    done = first["counts"].get(DocumentStatus.DONE.value, 0)
    print(f"{done} done; JSON in {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
