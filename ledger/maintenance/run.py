"""One maintenance pass, run by one process at a time, and the loop that repeats it.

A pass: rescue expired leases; expire unfinished uploads past their expiry and remove
ended uploads' files; prune the history of batches finished more than
``LEDGER_RETENTION_DAYS`` ago (see :mod:`ledger.queue.retention` for what is kept and why);
on SQLite, now and then, ``PRAGMA optimize`` and a WAL checkpoint. Every step deletes or
changes a bounded number of rows per transaction. The pass records what it did in
``maintenance_runs``.

Any number of processes run the loop (``ledger serve`` and every ``ledger worker``); the
lock (:mod:`ledger.db.leader`) lets one pass run at a time and the others skip their turn.
Every step is safe to repeat, so a runner killed mid-pass leaves nothing to repair: the
next pass does what was left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.db.leader import Held
from ledger.db.lost_connection import log_failed_round
from ledger.maintenance import runs as maintenance_runs
from ledger.maintenance.uploads import clean_uploads
from ledger.model import MaintenanceRun
from ledger.queue import retention

log = logging.getLogger(__name__)

# A SQLite lease lasts this long unless renewed; the pass renews it after every step, so
# it only runs out when its runner died (then another takes over after this long).
LEASE = timedelta(minutes=5)

Prune = Callable[[AsyncConnection, datetime, int], Awaitable[int]]


def runner_name(role: str) -> str:
    """Who runs maintenance: the role, host and process id (shown in each run's record)."""
    return f"{role} {socket.gethostname()} pid={os.getpid()}"


class LeaseLostError(Exception):
    """The SQLite lease ran out mid-pass and another runner took it: stop this pass."""


async def _repeat(ledger: Ledger, held: Held, step: Prune, *, cutoff: datetime) -> int:
    """Run one pruning step in bounded transactions until nothing is left."""
    total = 0
    while True:

        async def work(conn: AsyncConnection, now: datetime) -> int:
            return await step(conn, cutoff, retention.STEP_ROWS)

        count = await ledger.runner.run(work)
        total += count
        if not await held.renew():
            raise LeaseLostError
        if count < retention.STEP_ROWS:
            return total


def prune_step(
    fn: Callable[..., Awaitable[int]],
) -> Prune:
    async def step(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
        return await fn(conn, cutoff=cutoff, limit=limit)

    return step


PRUNE_STEPS: tuple[tuple[str, Prune], ...] = (
    ("events_pruned", prune_step(retention.prune_events)),
    ("attempts_pruned", prune_step(retention.prune_attempts)),
    ("workers_pruned", prune_step(retention.prune_workers)),
    ("upload_rows_pruned", prune_step(retention.prune_uploads)),
)


async def _steps(ledger: Ledger, held: Held, counts: dict[str, int]) -> None:
    counts["leases_rescued"] = await ledger.queue.rescue_expired()
    if not await held.renew():
        raise LeaseLostError
    counts["uploads_expired"], counts["upload_files_removed"] = await clean_uploads(ledger)
    if not await held.renew():
        raise LeaseLostError
    days = ledger.settings.retention_days
    if days is not None:

        async def cutoff_of(conn: AsyncConnection, now: datetime) -> datetime:
            return now - timedelta(days=days)

        cutoff = await ledger.runner.run(cutoff_of, write=False)
        for name, step in PRUNE_STEPS:
            counts[name] = await _repeat(ledger, held, step, cutoff=cutoff)
    every = timedelta(seconds=ledger.settings.sqlite_optimize_seconds)
    counts["sqlite_optimized"] = 0
    backend = ledger.runner.backend
    if backend.needs_upkeep:

        async def due(conn: AsyncConnection, now: datetime) -> bool:
            return await maintenance_runs.claim_optimize(conn, now=now, every=every)

        if await ledger.runner.run(due):
            counts["sqlite_optimized"] = int(await backend.upkeep(ledger.engine))


async def run_once(ledger: Ledger, *, runner: str) -> MaintenanceRun | None:
    """Run one maintenance pass unless another process is running one (then None).

    Returns the run's record. A step that fails ends the pass: the error is recorded with
    the counts of the steps before it, and raised."""

    async def transact(work: Callable[[AsyncConnection, datetime], Awaitable[bool]]) -> bool:
        return await ledger.runner.run(work)

    leadership = ledger.runner.backend.leadership
    async with leadership(ledger.engine, transact, owner=runner, lease=LEASE) as held:
        if held is None:
            return None

        async def begin(conn: AsyncConnection, now: datetime) -> int:
            return await maintenance_runs.start(conn, runner=runner, now=now)

        run_id = await ledger.runner.run(begin, retries=1)
        counts: dict[str, int] = {}
        error: str | None = None
        try:
            await _steps(ledger, held, counts)
        except LeaseLostError:
            error = "the maintenance lease ran out and another runner took it"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        except BaseException:  # cancelled: its process is stopping
            error = "stopped before the end (its process was stopping)"
            raise
        finally:
            keep = ledger.settings.maintenance_runs_kept

            async def end(conn: AsyncConnection, now: datetime) -> MaintenanceRun:
                return await maintenance_runs.finish(
                    conn, run_id, counts=counts, error=error, now=now, keep=keep
                )

            run = await asyncio.shield(ledger.runner.run(end))
    return run


async def last_runs(ledger: Ledger, *, limit: int = 1) -> list[MaintenanceRun]:
    """The most recent maintenance runs, newest first."""

    async def work(conn: AsyncConnection, now: datetime) -> list[MaintenanceRun]:
        return await maintenance_runs.last(conn, limit=limit)

    return await ledger.runner.run(work, write=False)


async def last_run(ledger: Ledger) -> MaintenanceRun | None:
    """The most recent maintenance run, or None before the first."""
    runs = await last_runs(ledger, limit=1)
    return runs[0] if runs else None


async def run_forever(ledger: Ledger, *, runner: str, interval: float) -> None:
    """Run a pass now and every ``interval`` seconds until cancelled. A failed pass
    (database unavailable, say) is logged and the next one tried at the next turn."""
    while True:
        try:
            run = await run_once(ledger, runner=runner)
            if run is not None and any(run.counts.values()):
                log.info("maintenance: %s", _summary(run))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_failed_round(log, "maintenance pass", exc, interval)
        await asyncio.sleep(interval)


def _summary(run: MaintenanceRun) -> str:
    return ", ".join(f"{n} {name}" for name, n in run.counts.items() if n) or "nothing to do"
