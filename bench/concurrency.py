"""Concurrency: the ``sleep`` processor (50 ms per document) through the real Worker.

Run: python bench/concurrency.py [--levels 1 10 50 200] [--rounds 40] [--seconds 0.05]
     [--no-prefetch]

--no-prefetch runs the worker with the default settings (no leasing ahead), the setting a
crash costs least with; without it the worker leases ahead as the other figures did.

At concurrency C a perfect worker finishes C / 0.05 documents per second. Each level
processes C x rounds documents (so every level ideally takes the same time), and reports
its efficiency: measured rate / ideal rate.

Floor, measured in the same run: the same number of 50 ms sleeps run by C plain asyncio
tasks pulling from a queue, no database. Its efficiency is what this event loop on this
machine can do; the ledger's ratio to it is what the ledger costs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from harness import Report, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker


async def asyncio_floor(concurrency: int, docs: int, seconds: float) -> float:
    """Seconds for ``concurrency`` tasks to run ``docs`` sleeps of ``seconds``."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(docs):
        queue.put_nowait(i)

    async def runner() -> None:
        while True:
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await asyncio.sleep(seconds)

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(concurrency)))
    return time.perf_counter() - started


async def ledger_level(
    home: Path, concurrency: int, docs: int, seconds: float, prefetch: bool = True
) -> dict[str, Any]:
    extra = {} if prefetch else {"prefetch": 0}
    settings = settings_for(home, concurrency=concurrency, **extra)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        result = await ledger.queue.submit(
            BatchSpec(processor="sleep", options={"seconds": seconds}),
            [SourceSpec(source=f"/bench/doc-{i:06d}") for i in range(docs)],
        )
        worker = Worker(ledger)
        started = time.perf_counter()
        stats = await worker.run(burst=True)
        elapsed = time.perf_counter() - started
        batch = await ledger.reads.batch(result.batch.id)
        if batch.counts[DocumentStatus.DONE] != docs:
            raise SystemExit(f"concurrency {concurrency}: not every document was done")
        return {"seconds": elapsed, "claimed": stats.claimed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 10, 50, 200])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=0.05)
    parser.add_argument("--no-prefetch", action="store_true", help="the default settings")
    args = parser.parse_args()
    report = Report("concurrency", vars(args))
    rows = []
    for level in args.levels:
        docs = level * args.rounds
        ideal = level / args.seconds
        with scratch("concurrency") as folder:
            got = asyncio.run(
                ledger_level(folder, level, docs, args.seconds, prefetch=not args.no_prefetch)
            )
        floor_s = asyncio.run(asyncio_floor(level, docs, args.seconds))
        rate = docs / got["seconds"]
        floor_rate = docs / floor_s
        rows.append([level, docs, ideal, rate, rate / ideal, floor_rate / ideal, rate / floor_rate])
    report.section(
        f"sleep {args.seconds * 1000:.0f} ms per document, SQLite, one worker"
        + (", default settings (no leasing ahead)" if args.no_prefetch else ", leasing ahead"),
        [
            "concurrency",
            "documents",
            "ideal docs/s",
            "ledger docs/s",
            "efficiency",
            "floor efficiency (asyncio only)",
            "ratio to floor",
        ],
        rows,
    )
    report.note("targets: efficiency at least 0.90 at concurrency 50 and 0.80 at 200")
    report.write()


if __name__ == "__main__":
    main()
