"""Workers as the ledger sees them: alive, lost or stopped, and what each can run.

A worker's state is never stored: it is derived when read from two facts the worker writes,
``stopped_at`` (set when it stops cleanly) and ``heartbeat_at`` (renewed every heartbeat).
A worker killed with SIGKILL never sets ``stopped_at``; once its heartbeat is older than
the lease time its leases have run out too, and it is ``lost``. :func:`state_of` is that one
definition, as SQL, used by the listing, the counts for metrics and the routing questions
("can any live worker run processor X?").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, case, func, literal, select

from ledger.db.models import documents, workers
from ledger.errors import InvalidInput
from ledger.model import Page, WorkerInfo
from ledger.queue.progress import _encode_cursor, newest_first
from ledger.queue.status_reads import LIVE_WORKERS_READ
from ledger.states import DocumentStatus, WorkerState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def state_of(cutoff: datetime) -> ColumnElement[str]:
    """The state of a worker row, as SQL: ``stopped`` once it stopped, ``lost`` when its
    heartbeat is older than ``cutoff`` (now minus the lease time), else ``alive``."""
    return case(
        (workers.c.stopped_at.is_not(None), literal(WorkerState.STOPPED.value)),
        (workers.c.heartbeat_at < cutoff, literal(WorkerState.LOST.value)),
        else_=literal(WorkerState.ALIVE.value),
    )


def _alive(cutoff: datetime) -> ColumnElement[bool]:
    # The same facts as state_of's 'alive', written so the heartbeat index can serve it.
    return and_(workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= cutoff)


def cutoff_for(now: datetime, lease_seconds: float) -> datetime:
    return now - timedelta(seconds=lease_seconds)


async def list_workers(
    conn: AsyncConnection,
    *,
    now: datetime,
    lease_seconds: float,
    state: WorkerState | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[WorkerInfo]:
    """Workers newest first (by start), ``limit`` at a time, keyset paged."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be from 1 to 1000")
    cutoff = cutoff_for(now, lease_seconds)
    state_col = state_of(cutoff).label("state")
    query = select(workers, state_col)
    if state is not None:
        query = query.where(state_col == state.value)
    rows = await newest_first(conn, query, workers.c.started_at, workers.c.id, cursor, limit)
    page = rows[:limit]
    held = await _in_flight(conn, [r.id for r in page])
    items = [
        WorkerInfo(
            id=r.id,
            host=r.hostname,
            pid=r.pid,
            state=WorkerState(r.state),
            processors=list(r.processors or []),
            concurrency=r.concurrency,
            in_flight=held.get(r.id, 0),
            finished=int(r.documents_finished),
            started_at=r.started_at,
            last_heartbeat_at=r.heartbeat_at,
            stopped_at=r.stopped_at,
        )
        for r in page
    ]
    next_cursor = _encode_cursor(items[-1].started_at, items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def _in_flight(conn: AsyncConnection, worker_ids: Sequence[str]) -> dict[str, int]:
    if not worker_ids:
        return {}
    rows = (
        await conn.execute(
            select(documents.c.lease_owner, func.count())
            .where(
                documents.c.status == DocumentStatus.RUNNING.value,
                documents.c.lease_owner.in_(list(worker_ids)),
            )
            .group_by(documents.c.lease_owner)
        )
    ).all()
    return {owner: int(n) for owner, n in rows}


async def count_by_state(
    conn: AsyncConnection, *, now: datetime, lease_seconds: float
) -> dict[WorkerState, int]:
    """How many workers are in each state (every state present, zeros included)."""
    state_col = state_of(cutoff_for(now, lease_seconds))
    rows = (await conn.execute(select(state_col, func.count()).group_by(state_col))).all()
    counts = {s: 0 for s in WorkerState}
    for value, n in rows:
        counts[WorkerState(value)] = int(n)
    return counts


async def others_able(
    conn: AsyncConnection,
    processor: str,
    *,
    exclude: str | None,
    now: datetime,
    lease_seconds: float,
) -> int:
    """How many live workers other than ``exclude`` can run ``processor``."""
    rows = (
        await conn.execute(
            select(workers.c.id, workers.c.processors)
            .where(_alive(cutoff_for(now, lease_seconds)))
            .limit(LIVE_WORKERS_READ)
        )
    ).all()
    return sum(1 for r in rows if r.id != exclude and processor in (r.processors or []))
