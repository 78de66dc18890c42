"""Batch deletion: how long one deletion step holds SQLite's write lock, and the whole run.

Run: python bench/deletion.py [--docs 100000] [--chunks 2] [--step-rows 2000]

1. Builds a SQLite ledger with one batch of ``--docs`` documents, one attempt and one event
   each, ``--chunks`` chunks each (with their FTS5 rows, written by the trigger) and a
   vector per chunk, plus a second batch of the same shape that must stay; all with raw
   sqlite3 inserts (building is not what is measured).
2. Deletes the first batch with ``ledger.control.delete_batch`` and times every write transaction
   it runs (from taking the write lock to commit: the time other writers wait at most).
3. Floor, on a copy of the same file: the same rows deleted in one transaction with raw
   sqlite3 (what a one-shot ``DELETE`` would hold the write lock for).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import Any

from harness import Report, median, percentile, raw_connect, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate

NOW = "2026-01-01 12:00:00.000000+00:00"


def build(path: Any, batch_id: str, docs: int, chunks: int, first_id: int) -> None:
    """One batch with every kind of row a deletion removes, by raw sqlite3."""
    conn = raw_connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    conn.execute(
        "INSERT INTO batches (id, processor, options, max_attempts, created_at, updated_at)"
        " VALUES (?, 'noop', '{}', 3, ?, ?)",
        (batch_id, NOW, NOW),
    )
    conn.execute(
        "INSERT OR IGNORE INTO workers (id, hostname, pid, concurrency, started_at,"
        " heartbeat_at) VALUES ('bench', 'bench', 1, 1, ?, ?)",
        (NOW, NOW),
    )
    conn.executemany(
        "INSERT INTO documents (id, batch_id, source, status, attempts, next_attempt_at,"
        " finished_at, result, created_at, updated_at)"
        " VALUES (?, ?, ?, 'done', 1, ?, ?, '{}', ?, ?)",
        ((first_id + i, batch_id, f"/{batch_id}/{i}", NOW, NOW, NOW, NOW) for i in range(docs)),
    )
    conn.executemany(
        "INSERT INTO attempts (document_id, batch_id, attempt, lease_token, worker_id,"
        " started_at, finished_at, duration_seconds, outcome) VALUES (?, ?, 1, ?, 'bench',"
        " ?, ?, 0.0, 'done')",
        ((first_id + i, batch_id, f"{batch_id}-{i}", NOW, NOW) for i in range(docs)),
    )
    conn.executemany(
        "INSERT INTO events (batch_id, document_id, kind, created_at)"
        " VALUES (?, ?, 'document_done', ?)",
        ((batch_id, first_id + i, NOW) for i in range(docs)),
    )
    conn.executemany(
        "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end,"
        " created_at) VALUES (?, ?, ?, ?, 0, 40, ?)",
        (
            (first_id + i, batch_id, o, f"chunk {o} of document {i} in {batch_id}", NOW)
            for i in range(docs)
            for o in range(chunks)
        ),
    )
    conn.execute(
        "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at)"
        " SELECT id, 'bench', 4, zeroblob(16), ? FROM chunks WHERE batch_id = ?",
        (NOW, batch_id),
    )
    conn.execute("COMMIT")
    conn.close()


def rows(path: Any, batch_id: str) -> int:
    conn = raw_connect(path)
    total = 0
    for table in ("documents", "attempts", "events", "chunks"):
        total += conn.execute(
            f"SELECT count(*) FROM {table} WHERE batch_id = ?", (batch_id,)
        ).fetchone()[0]
    total += conn.execute(
        "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id"
        " WHERE c.batch_id = ?",
        (batch_id,),
    ).fetchone()[0]
    conn.close()
    return int(total)


def one_shot(path: Any, batch_id: str) -> float:
    """The floor: the same rows deleted in one transaction, in the same order."""
    conn = raw_connect(path)
    conn.execute("PRAGMA foreign_keys = ON")
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "DELETE FROM chunk_vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE batch_id = ?)",
        (batch_id,),
    )
    for table in ("chunks", "attempts", "documents", "events"):
        conn.execute(f"DELETE FROM {table} WHERE batch_id = ?", (batch_id,))
    conn.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


async def timed_delete(ledger: Ledger, batch_id: str) -> tuple[list[float], float]:
    """Run the deletion, timing each write transaction the ledger runs for it."""
    held: list[float] = []
    run = ledger.runner.run

    async def timing_run(work: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        if not kwargs.get("write", True):
            return await run(work, **kwargs)
        started = time.perf_counter()
        try:
            return await run(work, **kwargs)
        finally:
            held.append(time.perf_counter() - started)

    ledger.runner.run = timing_run  # type: ignore[method-assign]
    started = time.perf_counter()
    await ledger.control.delete_batch(batch_id)
    return held, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=2)
    parser.add_argument("--step-rows", type=int, default=2000)
    args = parser.parse_args()
    report = Report("deletion", vars(args))
    with scratch("deletion") as home:
        path = home / "ledger.db"
        settings = settings_for(home, delete_step_rows=args.step_rows)
        migrate.upgrade(settings.url)
        build(path, "gone", args.docs, args.chunks, 1)
        build(path, "kept", args.docs, args.chunks, args.docs + 1)
        total = rows(path, "gone")
        floor_copy = home / "floor.db"
        shutil.copy(path, floor_copy)
        for suffix in ("-wal", "-shm"):
            if (home / f"ledger.db{suffix}").exists():
                shutil.copy(home / f"ledger.db{suffix}", home / f"floor.db{suffix}")

        async def go() -> tuple[list[float], float]:
            async with await Ledger.open(settings) as ledger:
                return await timed_delete(ledger, "gone")

        held, elapsed = asyncio.run(go())
        floor = one_shot(floor_copy, "gone")
        assert rows(path, "gone") == 0 and rows(path, "kept") == total
    ms = [h * 1000 for h in held]
    report.section(
        "Write-lock hold time per deletion transaction (SQLite)",
        ["rows deleted", "transactions", "median ms", "p99 ms", "max ms", "total s", "rows/s"],
        [
            [
                total,
                len(held),
                round(median(ms), 1),
                round(percentile(ms, 99), 1),
                round(max(ms), 1),
                round(elapsed, 1),
                round(total / elapsed),
            ]
        ],
    )
    report.section(
        "Floor: the same rows in one transaction (raw sqlite3)",
        ["rows deleted", "write lock held s", "longest step / one shot"],
        [[total, round(floor, 2), f"{max(held) / floor:.1%}"]],
    )
    report.write()


if __name__ == "__main__":
    main()
