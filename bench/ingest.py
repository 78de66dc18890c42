"""Ingest through the ledger versus the parse-only floor, on the benchmark corpus.

    python bench/ingest.py bench/corpus/data [--workers 2] [--json bench/results/ingest.json]

Three runs in one process, same files, same parsers, same pool size:

- floor: ``process_file`` over every file in a ProcessPool, spools deleted, no database;
- ingest: a fresh SQLite ledger, submit (one stat per file), a Worker until complete
  (dedup lookups, hashing, extraction in the pool, chunks + FTS stored with the outcome);
- re-run: a second batch over the same unchanged files (skipped by size and mtime).

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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.core.ledger import Ledger
from ledger.errors import ProcessingError
from ledger.processors.ingest import IngestOptions, process_file
from ledger.records import BatchSpec, SourceSpec
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
            os.unlink(outcome.spool_path)

        await asyncio.gather(*(one(p) for p in files))
    return {"seconds": time.perf_counter() - started, "failed": failed, "chunks": chunks}


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
    await ledger.submit(BatchSpec(id=batch_id, processor="ingest"), scan(files))
    submitted = time.perf_counter()
    await Worker(ledger, batch_ids=[batch_id], concurrency=concurrency).run(until_complete=True)
    finished = time.perf_counter()
    batch = await ledger.batch(batch_id)
    return {
        "seconds": finished - started,
        "submit_seconds": submitted - started,
        "counts": {s.value: n for s, n in batch.counts.items() if n},
    }


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
            async with ledger.transaction(write=False) as conn:
                from sqlalchemy import text

                chunks = (await conn.execute(text("SELECT count(*) FROM chunks"))).scalar_one()
        db_bytes = sum(p.stat().st_size for p in (work / "home").glob("ledger.db*"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    mb = total_bytes / 1e6
    rows = [
        ("floor (parse only, no DB)", floor_run["seconds"]),
        ("ingest through the ledger", first["seconds"]),
        ("re-run, unchanged", again["seconds"]),
    ]
    print(f"{len(files)} files, {mb:.1f} MB, {args.workers} pool processes, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'run':<28} {'s':>7} {'docs/s':>8} {'MB/s':>7}")
    for name, seconds in rows:
        print(f"{name:<28} {seconds:7.2f} {len(files) / seconds:8.1f} {mb / seconds:7.2f}")
    print(f"ingest / floor throughput: {floor_run['seconds'] / first['seconds']:.0%}; "
          f"re-run / first run time: {again['seconds'] / first['seconds']:.1%}")  # fmt: skip
    print(f"ingest counts {first['counts']}, re-run counts {again['counts']}, chunks {chunks}, "
          f"floor chunks {floor_run['chunks']} (failed {floor_run['failed']})")  # fmt: skip
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
        "chunks": chunks,
        "database_bytes": db_bytes,
        "peak_rss_bytes": {"self": self_rss, "largest_child": child_rss},
        "ratios": {
            "ingest_vs_floor_throughput": floor_run["seconds"] / first["seconds"],
            "rerun_vs_first_time": again["seconds"] / first["seconds"],
        },
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str))
    done = first["counts"].get(DocumentStatus.DONE.value, 0)
    print(f"{done} done; JSON in {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
