"""Ledger overhead: the ``noop`` processor end to end through the real Worker, on SQLite.

Run: python bench/ledger_overhead.py [--docs 100000]

For each worker configuration: submit the documents (one batch, the core submit), then run a
Worker in burst mode until nothing is left. Every document is claimed under a lease, finished
fenced by its token, and leaves an attempt row and an event, all committed.

Floor, measured in the same run: raw sqlite3 on a minimal table (id, status, lease) in the
same journal mode: bulk insert, then claim and finish in transactions of the same size as
the worker's claims. The ratio says how much of the machine the ledger's bookkeeping uses.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from harness import Report, raw_connect, scratch, settings_for

from ledger.core.ledger import Ledger
from ledger.db import migrate
from ledger.records import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker

# (name, concurrency, claim_batch, commit_batch); None: the settings' defaults.
CONFIGS: list[tuple[str, int | None, int | None, int | None]] = [
    ("defaults", None, None, None),
    ("bulk", 512, 512, 2048),
]


def raw_floor(path: Path, docs: int, batch: int) -> dict[str, float]:
    """Bulk insert, then claim+finish ``batch`` rows per transaction, on a minimal table."""
    conn = raw_connect(path)
    conn.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL, lease TEXT, result TEXT)"
    )
    conn.execute("CREATE INDEX ix_jobs_status ON jobs (status, id)")
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO jobs (status) VALUES ('pending')", (() for _ in range(docs)))
    conn.execute("COMMIT")
    inserted = time.perf_counter()
    done = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        ids = [
            row[0]
            for row in conn.execute(
                "UPDATE jobs SET status = 'running', lease = lower(hex(randomblob(16)))"
                " WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY id"
                " LIMIT ?) RETURNING id",
                (batch,),
            )
        ]
        conn.execute("COMMIT")
        if not ids:
            break
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "UPDATE jobs SET status = 'done', lease = NULL, result = '{}'"
            f" WHERE id IN ({','.join('?' * len(ids))}) AND status = 'running'",
            ids,
        )
        conn.execute("COMMIT")
        done += len(ids)
    finished = time.perf_counter()
    conn.close()
    assert done == docs
    return {"insert_s": inserted - started, "cycle_s": finished - inserted}


async def ledger_run(home: Path, docs: int, config: tuple[Any, ...]) -> dict[str, Any]:
    _, concurrency, claim_batch, commit_batch = config
    overrides = {
        k: v
        for k, v in (
            ("concurrency", concurrency),
            ("claim_batch", claim_batch),
            ("commit_batch", commit_batch),
        )
        if v is not None
    }
    settings = settings_for(home, **overrides)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        started = time.perf_counter()
        submitted = await ledger.submit(
            BatchSpec(processor="noop", name="overhead"),
            (SourceSpec(source=f"/bench/doc-{i:07d}.txt") for i in range(docs)),
        )
        submit_s = time.perf_counter() - started
        worker = Worker(ledger)
        started = time.perf_counter()
        stats = await worker.run(burst=True)
        process_s = time.perf_counter() - started
        batch = await ledger.batch(submitted.batch.id)
        return {
            "submit_s": submit_s,
            "process_s": process_s,
            "done": batch.counts[DocumentStatus.DONE],
            "stats_done": stats.done,
            "concurrency": worker.concurrency,
            "claim_size": min(worker.concurrency, worker.claim_batch),
            "commit_batch": worker.commit_batch,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    report = Report("ledger_overhead", {"docs": args.docs})
    rows = []
    for config in CONFIGS:
        with scratch("overhead") as folder:
            got = asyncio.run(ledger_run(folder, args.docs, config))
            if got["done"] != args.docs:
                raise SystemExit(f"{config[0]}: {got['done']} of {args.docs} documents finished")
            floor = raw_floor(folder / "floor.db", args.docs, got["claim_size"])
        total_s = got["submit_s"] + got["process_s"]
        floor_s = floor["insert_s"] + floor["cycle_s"]
        rows.append(
            [
                config[0],
                got["concurrency"],
                got["claim_size"],
                got["commit_batch"],
                args.docs / total_s,
                args.docs / got["process_s"],
                args.docs / floor_s,
                args.docs / floor["cycle_s"],
                (args.docs / total_s) / (args.docs / floor_s),
                (args.docs / got["process_s"]) / (args.docs / floor["cycle_s"]),
            ]
        )
    report.section(
        f"noop, {args.docs:,} documents, one batch, SQLite",
        [
            "worker",
            "concurrency",
            "claim size",
            "commit batch",
            "ledger docs/s (submit+process)",
            "ledger docs/s (process)",
            "floor docs/s (insert+cycles)",
            "floor docs/s (cycles)",
            "ratio end to end",
            "ratio process",
        ],
        rows,
    )
    report.note("target: at least 20,000 docs/s end to end (measured on a quiet machine)")
    report.write()


if __name__ == "__main__":
    main()
