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

from harness import Report, raw_connect, scratch, settings_for, thread_cpu_seconds

from ledger.app import Ledger
from ledger.db import migrate
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker

# (name, concurrency, claim_batch, commit_batch, prefetch); None: the settings' defaults,
# except that leasing ahead is on unless the row says otherwise (as in the figures of
# docs/benchmarks.md, see harness.settings_for). The floor claims and finishes in
# transactions of the worker's mean claim size.
CONFIGS: list[tuple[str, int | None, int | None, int | None, int | None]] = [
    ("defaults", None, None, None, None),
    ("defaults, no leasing ahead", None, None, None, 0),
    ("bulk", 512, 512, 2048, None),
]


def raw_floor(path: Path, docs: int, batch: int) -> dict[str, float]:
    """Bulk insert, then claim+finish ``batch`` rows per transaction, on a minimal table."""
    conn = raw_connect(path)
    conn.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY, status TEXT NOT NULL, lease TEXT, result TEXT)"
    )
    conn.execute("CREATE INDEX ix_jobs_status ON jobs (status, id)")
    started, cpu_started = time.perf_counter(), time.process_time()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO jobs (status) VALUES ('pending')", (() for _ in range(docs)))
    conn.execute("COMMIT")
    inserted, cpu_inserted = time.perf_counter(), time.process_time()
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
    finished, cpu_finished = time.perf_counter(), time.process_time()
    conn.close()
    assert done == docs
    return {
        "insert_s": inserted - started,
        "cycle_s": finished - inserted,
        "cpu_s": cpu_finished - cpu_started,
        "cycle_cpu_s": cpu_finished - cpu_inserted,
    }


async def ledger_run(home: Path, docs: int, config: tuple[Any, ...]) -> dict[str, Any]:
    _, concurrency, claim_batch, commit_batch, prefetch = config
    overrides = {
        k: v
        for k, v in (
            ("concurrency", concurrency),
            ("claim_batch", claim_batch),
            ("commit_batch", commit_batch),
            ("prefetch", prefetch),
        )
        if v is not None
    }
    settings = settings_for(home, **overrides)
    await migrate.upgrade_async(settings.url)
    async with await Ledger.open(settings) as ledger:
        cpu_started = time.process_time()
        started = time.perf_counter()
        submitted = await ledger.queue.submit(
            BatchSpec(processor="noop", name="overhead"),
            (SourceSpec(source=f"/bench/doc-{i:07d}.txt") for i in range(docs)),
        )
        submit_s = time.perf_counter() - started
        cpu_submitted = time.process_time()
        worker = Worker(ledger)
        sizes: dict[str, list[int]] = {"claim": [], "complete": []}
        claim, complete = ledger.queue.claim, ledger.queue.complete

        async def counted_claim(*args: Any, **kwargs: Any) -> Any:
            got = await claim(*args, **kwargs)
            if got:
                sizes["claim"].append(len(got))
            return got

        async def counted_complete(worker_id: str, outcomes: Any, **kwargs: Any) -> Any:
            sizes["complete"].append(len(outcomes))
            result = await complete(worker_id, outcomes, **kwargs)
            if result.claimed:  # a claim made in the finish's transaction
                sizes["claim"].append(len(result.claimed))
            return result

        ledger.queue.claim = counted_claim  # type: ignore[method-assign]
        ledger.queue.complete = counted_complete  # type: ignore[method-assign]
        started = time.perf_counter()
        threads_before = thread_cpu_seconds()
        stats = await worker.run(burst=True)
        process_s = time.perf_counter() - started
        cpu_processed = time.process_time()
        # The driver's threads live as long as their pooled connections: still there now.
        threads_after = thread_cpu_seconds()
        batch = await ledger.reads.batch(submitted.batch.id)
        return {
            "submit_s": submit_s,
            "process_s": process_s,
            "cpu_s": cpu_processed - cpu_started,
            "process_cpu_s": cpu_processed - cpu_submitted,
            "thread_cpu_s": {
                role: threads_after[role] - threads_before.get(role, 0.0) for role in threads_after
            },
            "done": batch.counts[DocumentStatus.DONE],
            "stats_done": stats.done,
            "concurrency": worker.concurrency,
            "claim_size": round(sum(sizes["claim"]) / max(1, len(sizes["claim"]))),
            "commit_size": round(sum(sizes["complete"]) / max(1, len(sizes["complete"]))),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    report = Report("ledger_overhead", {"docs": args.docs})
    rows, cpu_rows, split_rows = [], [], []
    n = args.docs
    for config in CONFIGS:
        with scratch("overhead") as folder:
            got = asyncio.run(ledger_run(folder, n, config))
            if got["done"] != n:
                raise SystemExit(f"{config[0]}: {got['done']} of {n} documents finished")
            floor = raw_floor(folder / "floor.db", n, got["claim_size"])
        total_s = got["submit_s"] + got["process_s"]
        floor_s = floor["insert_s"] + floor["cycle_s"]
        setup = [config[0], got["concurrency"], got["claim_size"], got["commit_size"]]
        rows.append(
            [
                *setup,
                n / total_s,
                n / got["process_s"],
                n / floor_s,
                n / floor["cycle_s"],
                floor_s / total_s,
                floor["cycle_s"] / got["process_s"],
            ]
        )
        cpu_rows.append(
            [
                *setup,
                got["cpu_s"] / n * 1e6,
                got["process_cpu_s"] / n * 1e6,
                floor["cpu_s"] / n * 1e6,
                floor["cycle_cpu_s"] / n * 1e6,
                floor["cpu_s"] / got["cpu_s"],
                n / got["cpu_s"],
            ]
        )
        split = got["thread_cpu_s"]
        if split:
            split_rows.append(
                [*setup, *(split[role] / n * 1e6 for role in ("sql", "main", "other"))]
            )
    setup_headers = ["worker", "concurrency", "mean claim", "mean commit"]
    report.section(
        f"noop, {n:,} documents, one batch, SQLite: wall clock",
        [
            *setup_headers,
            "ledger docs/s (submit+process)",
            "ledger docs/s (process)",
            "floor docs/s (insert+cycles)",
            "floor docs/s (cycles)",
            "ratio end to end",
            "ratio process",
        ],
        rows,
    )
    report.section(
        f"noop, {n:,} documents: CPU time of the process (all threads), robust to a busy machine",
        [
            *setup_headers,
            "ledger CPU us/doc (submit+process)",
            "ledger CPU us/doc (process)",
            "floor CPU us/doc (insert+cycles)",
            "floor CPU us/doc (cycles)",
            "CPU ratio end to end",
            "docs/s if CPU-bound",
        ],
        cpu_rows,
    )
    if split_rows:
        report.section(
            f"noop, {n:,} documents, processing only: CPU us/doc by thread",
            [
                *setup_headers,
                "SQL (driver threads: statements, hand-offs)",
                "Python (event loop thread)",
                "other threads",
            ],
            split_rows,
        )
    report.note("target: at least 20,000 docs/s end to end (measured on a quiet machine)")
    report.write()


if __name__ == "__main__":
    main()
