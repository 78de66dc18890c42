"""What each maintenance run did: one row per run, the last few kept."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.leader import LEADER_ROW
from ledger.db.models import maintenance, maintenance_runs
from ledger.model.maintenance import MaintenanceRun


def _run(row: Any) -> MaintenanceRun:
    return MaintenanceRun(
        id=int(row.id),
        runner=row.runner,
        started_at=row.started_at,
        finished_at=row.finished_at,
        counts={str(k): int(v) for k, v in (row.counts or {}).items()},
        error=row.error,
    )


async def start(conn: AsyncConnection, *, runner: str, now: datetime) -> int:
    """Record that ``runner`` started a run; returns its id."""
    result = await conn.execute(
        insert(maintenance_runs)
        .values(runner=runner, started_at=now, counts={})
        .returning(maintenance_runs.c.id)
    )
    return int(result.scalar_one())


async def finish(
    conn: AsyncConnection,
    run_id: int,
    *,
    counts: dict[str, int],
    error: str | None,
    now: datetime,
    keep: int,
) -> MaintenanceRun:
    """Record what the run did (``runs_trimmed`` added: the records older than the last
    ``keep`` that were dropped) and return the record."""
    trimmed = await conn.execute(
        delete(maintenance_runs).where(maintenance_runs.c.id <= run_id - keep)
    )
    await conn.execute(
        update(maintenance_runs)
        .where(maintenance_runs.c.id == run_id)
        .values(
            counts={**counts, "runs_trimmed": int(trimmed.rowcount)}, error=error, finished_at=now
        )
    )
    row = (
        await conn.execute(select(maintenance_runs).where(maintenance_runs.c.id == run_id))
    ).one()
    return _run(row)


async def last(conn: AsyncConnection, *, limit: int) -> list[MaintenanceRun]:
    """The most recent runs, newest first."""
    rows = await conn.execute(
        select(maintenance_runs).order_by(maintenance_runs.c.id.desc()).limit(limit)
    )
    return [_run(row) for row in rows]


async def claim_optimize(conn: AsyncConnection, *, now: datetime, every: timedelta) -> bool:
    """True (and the time recorded) when the last optimisation is ``every`` ago or more."""
    result = await conn.execute(
        update(maintenance)
        .where(
            maintenance.c.name == LEADER_ROW,
            or_(maintenance.c.optimized_at.is_(None), maintenance.c.optimized_at <= now - every),
        )
        .values(optimized_at=now)
    )
    return bool(result.rowcount)
