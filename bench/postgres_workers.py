"""Worker processes on PostgreSQL: documents per second with 1, 2 and 4 `ledger worker`s.

Run: python bench/postgres_workers.py [--url postgresql+asyncpg://...] [--documents N]
                                      [--workers 1,2,4] [--rounds R] [--cases noop,sleep,noop64]
                                      [--json results.json]

For each processor (``noop`` at concurrency 16, ``sleep`` with 10 ms per document at
concurrency 50, and with ``--cases noop64`` ``noop`` at concurrency 64, which lets a claim
lease as many documents as the floor's) and
each number of worker processes, a fresh database is created and migrated, one batch of N
documents is submitted, and that many real ``ledger worker --burst`` processes drain it.
The rate is measured by the database itself: documents / (last finish - first claim), so
process start-up is not counted.

Each ledger run is preceded by its own floor run, measured on the same schema (triggers
included) with the same number of connections: raw asyncpg
connections (one per "worker") that claim ``claim_batch`` documents with the same
``FOR UPDATE SKIP LOCKED`` statement and mark them done with one UPDATE, with no attempts,
events, fencing or Python processing. ``ratio`` is ledger rate / floor rate for the same
number of connections: the share of PostgreSQL's bare claim+finish capacity that the
ledger delivers. ``vs 1`` is the ledger's scaling against its own one-worker rate; with
``--rounds`` every figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from ledger.app import Ledger  # noqa: E402
from ledger.db import migrate  # noqa: E402
from ledger.model import BatchSpec, SourceSpec  # noqa: E402
from ledger.settings import Settings  # noqa: E402

DEFAULT_URL = os.environ.get(
    "LEDGER_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
CLAIM_BATCH = 64

FLOOR_CLAIM = """
WITH due AS (
  SELECT id FROM documents
  WHERE batch_id = $1 AND status = 'pending' AND next_attempt_at <= now()
  ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE documents d SET status = 'running', attempts = d.attempts + 1, lease_owner = $3,
  lease_token = md5(random()::text), lease_expires_at = now() + interval '60 s',
  started_at = now(), updated_at = now()
FROM due WHERE d.id = due.id
RETURNING d.id
"""
FLOOR_FINISH = """
UPDATE documents SET status = 'done', result = '{}'::jsonb, lease_owner = NULL,
  lease_token = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
WHERE id = ANY($1::bigint[]) AND status = 'running'
"""


def _connect_args(url: str) -> dict[str, Any]:
    u = make_url(url)
    return {
        "host": u.host,
        "port": u.port or 5432,
        "user": u.username,
        "password": u.password,
        "database": u.database,
    }


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(**_connect_args(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def fresh_database(url: str) -> str:
    name = f"ledger_bench_{secrets.token_hex(5)}"
    asyncio.run(_admin(url, f"CREATE DATABASE {name}"))
    db_url = str(make_url(url).set(database=name).render_as_string(hide_password=False))
    migrate.upgrade(db_url)
    return db_url


def drop_database(url: str, db_url: str) -> None:
    name = make_url(db_url).database
    asyncio.run(_admin(url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def submit(db_url: str, n: int, processor: str, options: dict[str, Any]) -> None:
    async with await Ledger.open(Settings(database_url=db_url)) as ledger:
        spec = BatchSpec(id="bench", processor=processor, options=options)
        await ledger.queue.submit(spec, [SourceSpec(f"/bench/{i:07d}") for i in range(n)])


async def measured_rate(db_url: str, n: int) -> tuple[float, dict[str, int]]:
    conn = await asyncpg.connect(**_connect_args(db_url))
    try:
        row = await conn.fetchrow(
            "SELECT min(started_at) AS first, max(finished_at) AS last,"
            " count(*) FILTER (WHERE status = 'done') AS done FROM documents"
        )
        deadlocks = await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        attempts = await conn.fetchval("SELECT count(*) FROM attempts")
    finally:
        await conn.close()
    if row["done"] != n:
        raise RuntimeError(f"only {row['done']} of {n} documents done")
    seconds = (row["last"] - row["first"]).total_seconds()
    return n / seconds, {"deadlocks": int(deadlocks or 0), "attempts": int(attempts)}


def run_workers(db_url: str, workers: int, concurrency: int) -> float:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(
        {
            "LEDGER_DATABASE_URL": db_url,
            "LEDGER_CLAIM_BATCH": str(CLAIM_BATCH),
            "LEDGER_CONCURRENCY": str(concurrency),
        }
    )
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger", "worker", "--burst", "--batch", "bench"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed: {err[-2000:]}")
    return time.monotonic() - started


async def floor_rate(db_url: str, connections: int, n: int) -> float:
    """Bare claim+finish over ``connections`` asyncpg connections on the same schema."""
    conns = [await asyncpg.connect(**_connect_args(db_url)) for _ in range(connections)]
    await conns[0].execute(
        "INSERT INTO workers (id, hostname, pid, concurrency, started_at, heartbeat_at)"
        " VALUES ('floor', 'bench', 0, 1, now(), now()) ON CONFLICT DO NOTHING"
    )

    async def loop(conn: asyncpg.Connection) -> int:
        done = 0
        while True:
            async with conn.transaction():
                ids = [
                    r["id"] for r in await conn.fetch(FLOOR_CLAIM, "bench", CLAIM_BATCH, "floor")
                ]
            if not ids:
                return done
            async with conn.transaction():
                await conn.execute(FLOOR_FINISH, ids)
            done += len(ids)

    try:
        started = time.perf_counter()
        total = sum(await asyncio.gather(*(loop(c) for c in conns)))
        seconds = time.perf_counter() - started
    finally:
        for c in conns:
            await c.close()
    if total != n:
        raise RuntimeError(f"floor finished {total} of {n}")
    return n / seconds


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def measure_floor(url: str, k: int, n: int) -> float:
    db_url = fresh_database(url)
    try:
        asyncio.run(submit(db_url, n, "noop", {}))
        return asyncio.run(floor_rate(db_url, k, n))
    finally:
        drop_database(url, db_url)


def measure_ledger(
    url: str, k: int, n: int, processor: str, options: dict[str, Any], concurrency: int
) -> tuple[float, float, dict[str, int]]:
    db_url = fresh_database(url)
    try:
        asyncio.run(submit(db_url, n, processor, options))
        wall = run_workers(db_url, k, concurrency)
        rate, extra = asyncio.run(measured_rate(db_url, n))
    finally:
        drop_database(url, db_url)
    return rate, wall, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="server (any database on it)")
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, report medians")
    parser.add_argument(
        "--cases",
        default="noop,sleep",
        help="noop, sleep, noop64 (noop at concurrency 64: claims of the floor's size)",
    )
    parser.add_argument("--json", default="postgres_workers.json", help="results file")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",")]
    wanted = set(args.cases.split(","))
    # (name for --cases, label, processor, options, concurrency)
    known: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("noop", "noop", "noop", {}, 16),
        ("sleep", "sleep 10ms c50", "sleep", {"seconds": 0.01}, 50),
        ("noop64", "noop c64", "noop", {}, 64),
    ]
    cases = [(label, proc, opts, conc) for name, label, proc, opts, conc in known if name in wanted]
    n = args.documents
    runs: list[dict[str, Any]] = []
    # Each ledger run follows its own floor run, so both see the same machine load (a shared
    # two-core machine drifts by tens of percent over minutes).
    for round_no in range(args.rounds):
        for label, processor, options, concurrency in cases:
            for k in counts:
                floor = measure_floor(args.url, k, n)
                rate, wall, extra = measure_ledger(args.url, k, n, processor, options, concurrency)
                runs.append(
                    {
                        "round": round_no,
                        "processor": label,
                        "workers": k,
                        "concurrency": concurrency,
                        "documents": n,
                        "docs_per_second": round(rate, 1),
                        "wall_seconds": round(wall, 2),
                        "floor_docs_per_second": round(floor, 1),
                        "ratio_to_floor": round(rate / floor, 3),
                        **extra,
                    }
                )
                print(
                    f"round {round_no + 1}, {label}, {k} worker(s): {rate:,.0f} docs/s,"
                    f" floor {floor:,.0f}, ratio {rate / floor:.2f}",
                    flush=True,
                )

    results = []
    for label, *_ in cases:
        for k in counts:
            mine = [r for r in runs if r["processor"] == label and r["workers"] == k]
            results.append(
                {
                    "processor": label,
                    "workers": k,
                    "docs_per_second": round(_median([r["docs_per_second"] for r in mine]), 1),
                    "floor_docs_per_second": round(
                        _median([r["floor_docs_per_second"] for r in mine]), 1
                    ),
                    "ratio_to_floor": round(_median([r["ratio_to_floor"] for r in mine]), 3),
                    "rounds": len(mine),
                }
            )
    print()
    header = (
        f"{'processor':<16}{'workers':>8}{'docs/s':>10}{'vs 1':>7}"
        f"{'floor':>10}{'floor vs 1':>11}{'ratio':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        one = next(
            x for x in results if x["processor"] == r["processor"] and x["workers"] == counts[0]
        )
        r["vs_first"] = round(r["docs_per_second"] / one["docs_per_second"], 3)
        r["floor_vs_first"] = round(r["floor_docs_per_second"] / one["floor_docs_per_second"], 3)
        print(
            f"{r['processor']:<16}{r['workers']:>8}{r['docs_per_second']:>10,.0f}"
            f"{r['vs_first']:>6.2f}x{r['floor_docs_per_second']:>10,.0f}"
            f"{r['floor_vs_first']:>10.2f}x{r['ratio_to_floor']:>7.2f}"
        )
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    Path(args.json).write_text(
        json.dumps({"machine": machine, "results": results, "runs": runs}, indent=2) + "\n"
    )
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
