"""Retention: database size with retention off versus 1 day, and what pruning costs.

Run: python bench/retention.py [--batches 10] [--docs 100000]

Each of ``--batches`` batches of ``--docs`` ``noop`` documents is processed through the
core (claims and completions of 1,000 documents), which records one attempt and one event
per document. The ledger's clock is then moved two days forward and one maintenance pass
runs: with ``LEDGER_RETENTION_DAYS=off`` (keeps everything) and with 1 day (prunes the
events and attempts of every batch). Reported: rows, the space the rows use (pages in use;
SQLite reuses freed pages rather than shrinking the file, ``VACUUM`` would), the file size,
the pass's time (with the SQLite optimisation and checkpoint it runs), the pruning
transactions' time per 100,000 pruned rows, and the longest single pruning transaction (the
write-lock hold time of one step).

Floor: the same rows deleted by raw sqlite3 in one statement per table (one long write
lock: what bounded steps trade against). Deleting an attempt also deletes its entries in
four indexes, one of them on a random token (the lease that made it): those deletes touch
pages all over that index, which is most of what a pruning step costs.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import Report, raw_connect, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.maintenance import run as maintenance
from ledger.model import BatchSpec, Outcome, SourceSpec
from ledger.queue import retention

CLAIM = 1_000


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def fill(home: Path, batches: int, docs: int) -> None:
    settings = settings_for(home, retention_days=None)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        worker = await ledger.workers.register(concurrency=CLAIM)
        for b in range(batches):
            specs = [SourceSpec(f"/bench/{b}/{i:07d}") for i in range(docs)]
            await ledger.queue.submit(BatchSpec(id=f"b{b}", processor="noop"), specs)
            while claimed := await ledger.queue.claim(worker, CLAIM, batch_ids=[f"b{b}"]):
                await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in claimed])
        await ledger.workers.stopped(worker)


def sizes(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        rows = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("documents", "attempts", "events")
        }
    finally:
        conn.close()
    return {"used_mb": (pages - free) * page / 1e6, "file_mb": pages * page / 1e6, **rows}


async def prune(home: Path, days: int | None) -> dict[str, Any]:
    """One pass with the clock two days on; the longest pruning transaction is timed."""
    clock = Clock()
    clock.now += timedelta(days=2)
    longest = total = 0.0
    real_events, real_attempts = retention.prune_events, retention.prune_attempts

    def timed(fn: Any) -> Any:
        async def step(conn: Any, *, cutoff: datetime, limit: int) -> int:
            nonlocal longest, total
            started = time.perf_counter()
            count: int = await fn(conn, cutoff=cutoff, limit=limit)
            took = time.perf_counter() - started
            longest, total = max(longest, took), total + took
            return count

        return step

    maintenance.PRUNE_STEPS = (
        ("events_pruned", maintenance.prune_step(timed(real_events))),
        ("attempts_pruned", maintenance.prune_step(timed(real_attempts))),
        *maintenance.PRUNE_STEPS[2:],
    )
    settings = settings_for(home, retention_days=days)
    async with await Ledger.open(settings, clock=clock) as ledger:
        started = time.perf_counter()
        run = await maintenance.run_once(ledger, runner="bench")
        elapsed = time.perf_counter() - started
    assert run is not None and run.error is None
    pruned = run.counts.get("events_pruned", 0) + run.counts.get("attempts_pruned", 0)
    return {"seconds": elapsed, "pruned": pruned, "longest_step": longest, "steps": total}


def raw_delete(path: Path) -> float:
    conn = raw_connect(path)
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    # A WHERE clause, as pruning has: a bare DELETE would take SQLite's truncate shortcut.
    conn.execute("DELETE FROM events WHERE batch_id IN (SELECT id FROM batches)")
    conn.execute("DELETE FROM attempts WHERE batch_id IN (SELECT id FROM batches)")
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    report = Report("retention", vars(args))
    with scratch("retention") as folder:
        base = folder / "base"
        base.mkdir()
        started = time.perf_counter()
        asyncio.run(fill(base, args.batches, args.docs))
        report.note(f"filled in {time.perf_counter() - started:.0f} s")
        results: list[list[Any]] = []
        for label, days in (("off", None), ("1 day", 1)):
            home = folder / label.replace(" ", "")
            shutil.copytree(base, home)
            figures = asyncio.run(prune(home, days))
            after = sizes(home / "ledger.db")
            pruned = figures["pruned"]
            per_100k = figures["steps"] / pruned * 1e5 if pruned else 0.0
            results.append(
                [
                    label,
                    after["documents"],
                    after["attempts"],
                    after["events"],
                    after["used_mb"],
                    after["file_mb"],
                    figures["seconds"],
                    per_100k,
                    figures["longest_step"] * 1000,
                ]
            )
        floor_home = folder / "floor"
        shutil.copytree(base, floor_home)
        floor = raw_delete(floor_home / "ledger.db")
    report.section(
        f"{args.batches} batches x {args.docs:,} noop documents, clock +2 days, one pass",
        [
            "retention",
            "documents",
            "attempts",
            "events",
            "MB in use",
            "file MB",
            "pass s",
            "pruning s per 100k rows",
            "longest step ms",
        ],
        results,
    )
    report.note(
        f"floor: raw DELETE of all events and attempts in one transaction: {floor:.2f} s "
        f"(one write lock held that long); pruning steps are {retention.STEP_ROWS:,} rows each"
    )
    report.write()


if __name__ == "__main__":
    main()
