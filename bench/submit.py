"""Submit: 100,000 documents in one batch through the core submit, on SQLite.

Run: python bench/submit.py [--docs 100000] [--repeat 3]

The ledger's submit creates the batch and inserts every document in one transaction (the
counter trigger keeps the batch's counts exact row by row).

Floor, measured in the same run: raw sqlite3 inserts of the same rows into the same schema
(same indexes, same triggers) in one transaction, both set-based (one INSERT ... SELECT
FROM json_each per 5,000 rows, as the ledger does) and row by row (``executemany``, which
with triggers on the table pays a statement journal per row); and ``executemany`` into a
minimal table (no indexes beyond the key, no triggers). The table says what the schema
costs and what the ledger's Python costs on top. Best of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import Report, raw_connect, scratch, settings_for

from ledger.app import Ledger
from ledger.db import migrate
from ledger.db.types import sqlite_timestamp
from ledger.model import BatchSpec, SourceSpec

CHUNK = 5_000  # rows per statement, as the ledger's submit


def sources(docs: int) -> list[SourceSpec]:
    return [
        SourceSpec(source=f"/bench/corpus/folder-{i // 1000:04d}/doc-{i:07d}.txt", size=4096)
        for i in range(docs)
    ]


async def ledger_submit(home: Path, specs: list[SourceSpec]) -> tuple[float, float]:
    settings = settings_for(home)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        started, cpu = time.perf_counter(), time.process_time()
        result = await ledger.queue.submit(BatchSpec(processor="noop", id="submit-bench"), specs)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result.added == len(specs)
        return elapsed, cpu


def raw_same_schema(home: Path, specs: list[SourceSpec], *, set_based: bool) -> tuple[float, float]:
    """Into the migrated schema (the same indexes and triggers): one INSERT ... SELECT FROM
    json_each per chunk, or one executemany of per-row statements."""
    url = settings_for(home).url
    migrate.upgrade(url)
    conn = raw_connect(home / "ledger.db")
    now = sqlite_timestamp(datetime.now(UTC))
    started, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO batches (id, state, priority, processor, options, max_attempts,"
        " created_at, updated_at) VALUES ('submit-bench', 'active', 0, 'noop', '{}', 3, ?, ?)",
        (now, now),
    )
    if set_based:
        for start in range(0, len(specs), CHUNK):
            rows = json.dumps([(s.source, s.size) for s in specs[start : start + CHUNK]])
            conn.execute(
                "INSERT INTO documents (batch_id, source, source_size, status, attempts,"
                " next_attempt_at, created_at, updated_at)"
                " SELECT 'submit-bench', json_extract(r.value, '$[0]'),"
                " json_extract(r.value, '$[1]'), 'pending', 0, ?1, ?1, ?1"
                " FROM json_each(?2) AS r WHERE true"
                " ON CONFLICT (batch_id, source) DO NOTHING",
                (now, rows),
            )
    else:
        conn.executemany(
            "INSERT INTO documents (batch_id, source, source_size, status, attempts,"
            " next_attempt_at, created_at, updated_at)"
            " VALUES ('submit-bench', ?, ?, 'pending', 0, ?, ?, ?)"
            " ON CONFLICT (batch_id, source) DO NOTHING",
            ((s.source, s.size, now, now, now) for s in specs),
        )
    conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return elapsed, cpu


def raw_minimal(path: Path, specs: list[SourceSpec]) -> tuple[float, float]:
    conn = raw_connect(path)
    conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, source TEXT, size INTEGER)")
    started, cpu = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO docs (source, size) VALUES (?, ?)", ((s.source, s.size) for s in specs)
    )
    conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report = Report("submit", vars(args))
    specs = sources(args.docs)
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, run in (
            ("ledger", lambda d: asyncio.run(ledger_submit(d, specs))),
            ("raw_schema_set", lambda d: raw_same_schema(d, specs, set_based=True)),
            ("raw_schema_rows", lambda d: raw_same_schema(d, specs, set_based=False)),
            ("raw_minimal", lambda d: raw_minimal(d / "minimal.db", specs)),
        ):
            with scratch("submit") as folder:
                elapsed, cpu = run(folder)
            best[name] = min(best.get(name, float("inf")), elapsed)
            best_cpu[name] = min(best_cpu.get(name, float("inf")), cpu)
    labels = {
        "ledger": "ledger submit (core, one transaction)",
        "raw_schema_set": "floor: raw set-based insert, same schema",
        "raw_schema_rows": "raw executemany, same schema (statement per row)",
        "raw_minimal": "floor: raw executemany, minimal table",
    }
    rows = [
        [
            label,
            best[key],
            args.docs / best[key],
            best[key] / best["ledger"],
            best_cpu[key] / args.docs * 1e6,
            best_cpu[key] / best_cpu["ledger"],
        ]
        for key, label in labels.items()
    ]
    report.section(
        f"submit {args.docs:,} documents in one batch, SQLite (best of {args.repeat})",
        [
            "what",
            "seconds",
            "rows/s",
            "time ratio (this / ledger)",
            "CPU us/row",
            "CPU ratio (this / ledger)",
        ],
        rows,
    )
    report.note("target: 100,000 documents in under 2 s")
    report.write()


if __name__ == "__main__":
    main()
