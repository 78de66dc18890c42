"""Restart: from process start to the first claim, on a big ledger full of expired leases.

Run: python bench/restart.py [--docs 1000000] [--expired 100000]

The ledger holds ``--docs`` documents of which ``--expired`` are running under leases that
ran out (the workers that held them crashed). A fifth of those were already on their last
allowed attempt (max_attempts 3): they were claimed, expired and rescued twice before.

1. A fresh worker process starts (a real ``Worker``); the time from just before the process
   is spawned until its first claim returns is measured, split into interpreter start and
   imports, opening the ledger, and the first claim (which also rescues a bounded number
   of expired leases).
2. Then every expired lease is rescued (``ledger.queue.rescue_expired``), timed, and the ledger is
   checked: no document has more attempts than its batch allows, no document has more
   attempt rows than that, and every document whose last attempt expired is failed.

Floor, measured in the same run: a process that starts the interpreter and imports the same
modules, then exits (what any worker pays before it can touch the database).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from harness import Report, child_env, median, scratch, settings_for

HERE = Path(__file__).resolve()
MAIN, VETERANS = "restart-main", "restart-veterans"
LEASE = 60.0
MAX_ATTEMPTS = 3


async def build(home: Path, docs: int, expired: int) -> dict[str, float]:
    from ledger.app import Ledger
    from ledger.db import migrate
    from ledger.model import BatchSpec, SourceSpec

    veterans = expired // 5
    settings = settings_for(home)
    await migrate.upgrade_async(settings.url)
    # The crashes happened an hour ago, on the ledger's clock: every lease below has run
    # out by the restart, and none runs out while the others are being taken.
    clock = [datetime.now(UTC) - timedelta(hours=1)]
    async with await Ledger.open(settings, clock=lambda: clock[0]) as ledger:
        started = time.perf_counter()
        await ledger.queue.submit(
            BatchSpec(processor="noop", id=MAIN, max_attempts=MAX_ATTEMPTS),
            (SourceSpec(source=f"/bench/restart/doc-{i:08d}") for i in range(docs - veterans)),
        )
        await ledger.queue.submit(
            BatchSpec(processor="noop", id=VETERANS, max_attempts=MAX_ATTEMPTS),
            (SourceSpec(source=f"/bench/restart/veteran-{i:08d}") for i in range(veterans)),
        )
        submit_s = time.perf_counter() - started
        crashed = await ledger.workers.register(concurrency=1)

        async def lease(batch: str, count: int) -> None:
            left = count
            while left > 0:
                got = await ledger.queue.claim(
                    crashed, min(left, 10_000), batch_ids=[batch], lease_seconds=LEASE
                )
                assert got, "nothing left to lease"
                left -= len(got)

        started = time.perf_counter()
        for _ in range(MAX_ATTEMPTS - 1):  # the veterans crash twice and are rescued
            await lease(VETERANS, veterans)
            clock[0] += timedelta(seconds=LEASE * 2)
            await ledger.queue.rescue_expired()
        await lease(VETERANS, veterans)  # ... and are on their last attempt now
        await lease(MAIN, expired - veterans)
        return {"submit_s": submit_s, "lease_s": time.perf_counter() - started}


async def child_worker() -> dict[str, Any]:
    """Run in the measured process: a real Worker, stopped right after its first claim."""
    from ledger.app import Ledger
    from ledger.settings import Settings
    from ledger.worker.runtime import Worker

    imported = time.time()
    ledger = await Ledger.open(Settings())
    opened = time.time()
    first: dict[str, Any] = {}
    worker = Worker(ledger)
    claim = ledger.queue.claim

    async def claim_and_stop(*args: Any, **kwargs: Any) -> Any:
        got = await claim(*args, **kwargs)
        if not first:
            first.update(at=time.time(), claimed=len(got))
            worker.stop(graceful=False)  # measured: give everything back at once
        return got

    ledger.queue.claim = claim_and_stop  # type: ignore[method-assign]
    try:
        await worker.run()
    finally:
        await ledger.close()
    return {
        "imported": imported,
        "opened": opened,
        "first_claim": first["at"],
        "claimed": first["claimed"],
    }


def floor_child() -> dict[str, float]:
    import ledger.app
    import ledger.settings
    import ledger.worker.runtime  # noqa: F401

    return {"imported": time.time()}


def spawn(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    spawned = time.time()
    proc = subprocess.run(
        [sys.executable, str(HERE), *args], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return spawned, json.loads(proc.stdout.strip().splitlines()[-1])


async def rescue_all(home: Path) -> tuple[float, int]:
    from ledger.app import Ledger

    async with await Ledger.open(settings_for(home)) as ledger:
        started = time.perf_counter()
        count = await ledger.queue.rescue_expired()
        return time.perf_counter() - started, count


def check(db: Path, veterans: int) -> dict[str, int]:
    conn = sqlite3.connect(db)
    over = conn.execute(
        "SELECT count(*) FROM documents d JOIN batches b ON b.id = d.batch_id"
        " WHERE d.attempts > b.max_attempts"
    ).fetchone()[0]
    rows_over = conn.execute(
        "SELECT count(*) FROM (SELECT a.document_id FROM attempts a"
        " JOIN batches b ON b.id = a.batch_id WHERE a.outcome <> 'released'"
        " GROUP BY a.document_id, b.max_attempts HAVING count(*) > b.max_attempts)"
    ).fetchone()[0]
    failed_veterans = conn.execute(
        "SELECT count(*) FROM documents WHERE batch_id = ? AND status = 'failed'"
        " AND error_code = 'lease_expired'",
        (VETERANS,),
    ).fetchone()[0]
    running = conn.execute("SELECT count(*) FROM documents WHERE status = 'running'").fetchone()[0]
    conn.close()
    return {
        "over": over,
        "rows_over": rows_over,
        "failed_veterans": failed_veterans,
        "veterans": veterans,
        "running": running,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--child", "--floor"):
        result = asyncio.run(child_worker()) if sys.argv[1] == "--child" else floor_child()
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--floor-runs", type=int, default=3)
    args = parser.parse_args()
    report = Report("restart", vars(args))
    with scratch("restart") as home:
        built = asyncio.run(build(home, args.docs, args.expired))
        settings = settings_for(home)
        conn = sqlite3.connect(home / "ledger.db")
        expired_at_restart = conn.execute(
            "SELECT count(*) FROM documents WHERE status = 'running'"
        ).fetchone()[0]
        conn.close()
        env = child_env(LEDGER_HOME=str(home), LEDGER_DATABASE_URL=settings.url)
        spawn(["--floor"], env)  # warm the file cache: both runs below start equal
        spawned, got = spawn(["--child"], env)
        floors = []
        for _ in range(args.floor_runs):
            floor_spawned, floor = spawn(["--floor"], env)
            floors.append(floor["imported"] - floor_spawned)
        rescue_s, rescued = asyncio.run(rescue_all(home))
        checked = check(home / "ledger.db", args.expired // 5)
    first = got["first_claim"] - spawned
    floor_s = median(floors)
    report.section(
        f"building: {args.docs:,} documents, {args.expired:,} expired leases",
        ["submit (s)", "leasing and expiring (s)", "expired leases at the restart"],
        [[built["submit_s"], built["lease_s"], expired_at_restart]],
    )
    report.section(
        "process start to first claim (seconds)",
        ["what", "seconds"],
        [
            ["interpreter start and imports", got["imported"] - spawned],
            ["open the ledger (engine, schema check)", got["opened"] - got["imported"]],
            ["register, rescue up to 1,000, first claim", got["first_claim"] - got["opened"]],
            ["total: process start to first claim", first],
            ["floor: interpreter start and the same imports", floor_s],
            ["ratio total / floor", first / floor_s],
            ["documents in the first claim", got["claimed"]],
        ],
    )
    report.section(
        "mass rescue after the restart",
        ["what", "value"],
        [
            ["expired leases rescued by rescue_expired()", rescued],
            ["seconds", rescue_s],
            ["leases rescued per second", rescued / rescue_s if rescue_s else float("nan")],
            ["documents with attempts > max_attempts", checked["over"]],
            ["documents with more counted attempt rows than max_attempts", checked["rows_over"]],
            [
                "documents on their last attempt now failed (lease_expired)",
                f"{checked['failed_veterans']:,} of {checked['veterans']:,}",
            ],
            ["documents still running", checked["running"]],
        ],
    )
    ok = (
        checked["over"] == 0
        and checked["rows_over"] == 0
        and checked["failed_veterans"] == checked["veterans"]
        and checked["running"] == 0
    )
    report.note("target: under 1 s to the first claim; no document over max_attempts")
    report.note(f"attempt limits held through the mass rescue: {'yes' if ok else 'NO'}")
    report.write()
    if not ok:
        raise SystemExit("the mass rescue broke an attempt limit")


if __name__ == "__main__":
    main()
