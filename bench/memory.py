"""Memory: peak RSS of a whole ``noop`` batch, submitted and processed, at growing sizes.

Run: python bench/memory.py [--sizes 100000 300000 1000000] [--ingest-mb 2048]

Each size runs in a fresh process (so each peak is its own): migrate, submit the batch
(sources streamed from a generator), run a Worker (``--concurrency``, default 256, so a
million documents take minutes, not hours; other settings default) until nothing is
left, then report the process's peak resident set size.

Floor, measured in the same run: the same process importing the same modules and opening
the ledger, with no documents. The growth over the floor is what the ledger keeps per batch;
flat means it does not grow with the batch.

Ingest: one text file of ``--ingest-mb`` MB through the ``ingest`` processor, when that
processor is available.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path

from harness import Report, peak_rss_mb, run_child, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker

HERE = Path(__file__).resolve()


async def child_noop(home: Path, docs: int, concurrency: int) -> dict[str, float]:
    settings = settings_for(home, concurrency=concurrency)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        if docs == 0:
            return {"seconds": 0.0, "peak_rss_mb": peak_rss_mb()}
        started = time.perf_counter()
        result = await ledger.queue.submit(
            BatchSpec(processor="noop", id="memory"),
            (SourceSpec(source=f"/bench/memory/doc-{i:08d}") for i in range(docs)),
        )
        submitted_rss = peak_rss_mb()
        await Worker(ledger).run(burst=True)
        batch = await ledger.reads.batch(result.batch.id)
        if batch.counts[DocumentStatus.DONE] != docs:
            raise SystemExit("not every document was done")
        return {
            "seconds": time.perf_counter() - started,
            "peak_rss_after_submit_mb": submitted_rss,
            "peak_rss_mb": peak_rss_mb(),
        }


async def child_ingest(home: Path, megabytes: int) -> dict[str, float]:
    path = home / "big.txt"
    line = ("The quick brown fox jumps over the lazy dog. " * 2 + "\n").encode()
    with path.open("wb") as out:
        block = line * (1024 * 1024 // len(line) + 1)
        for _ in range(megabytes):
            out.write(block[: 1024 * 1024])
    settings = settings_for(home)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        started = time.perf_counter()
        result = await ledger.queue.submit(
            BatchSpec(processor="ingest", id="ingest"), [SourceSpec(source=str(path))]
        )
        await Worker(ledger).run(burst=True)
        batch = await ledger.reads.batch(result.batch.id)
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {
            "seconds": time.perf_counter() - started,
            "peak_rss_mb": peak_rss_mb(),
            "children_peak_rss_mb": children,
            "done": batch.counts[DocumentStatus.DONE],
            "status": ",".join(f"{s.value}={n}" for s, n in batch.counts.items() if n),
        }


def ingest_available() -> bool:
    try:
        return importlib.util.find_spec("ledger.processors.ingest.processor") is not None
    except ModuleNotFoundError:
        return False


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, amount, concurrency = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        with scratch("memory") as home:
            run = (
                child_noop(home, amount, concurrency)
                if kind == "noop"
                else child_ingest(home, amount)
            )
            print(json.dumps(asyncio.run(run)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--ingest-mb", type=int, default=2048)
    parser.add_argument("--concurrency", type=int, default=256)
    args = parser.parse_args()
    report = Report("memory", vars(args))
    floor = run_child([str(HERE), "--child", "noop", "0", str(args.concurrency)])["peak_rss_mb"]
    rows = []
    for size in args.sizes:
        got = run_child([str(HERE), "--child", "noop", str(size), str(args.concurrency)])
        rows.append(
            [
                size,
                got["seconds"],
                got["peak_rss_after_submit_mb"],
                got["peak_rss_mb"],
                floor,
                got["peak_rss_mb"] - floor,
                got["peak_rss_mb"] / floor,
            ]
        )
    report.section(
        f"noop batch, submitted and processed end to end, SQLite, worker concurrency "
        f"{args.concurrency} (other settings default)",
        [
            "documents",
            "seconds",
            "peak RSS after submit (MB)",
            "peak RSS (MB)",
            "floor: same process, no documents (MB)",
            "growth over floor (MB)",
            "ratio to floor",
        ],
        rows,
    )
    report.note("target: under 250 MB and flat as the batch grows")
    if ingest_available():
        got = run_child([str(HERE), "--child", "ingest", str(args.ingest_mb), "0"])
        report.section(
            f"ingest of one {args.ingest_mb:,} MB text file",
            [
                "seconds",
                "MB/s",
                "peak RSS (MB)",
                "largest child process (MB)",
                "floor (MB)",
                "documents",
            ],
            [
                [
                    got["seconds"],
                    args.ingest_mb / got["seconds"],
                    got["peak_rss_mb"],
                    got["children_peak_rss_mb"],
                    floor,
                    got["status"],
                ]
            ],
        )
        report.note("target: under 500 MB")
    else:
        report.note(
            "ingest: skipped: ingest processor not available "
            "(ledger.processors.ingest.processor is not on this branch)"
        )
    report.write()


if __name__ == "__main__":
    main()
