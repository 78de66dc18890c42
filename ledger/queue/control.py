"""Steering batches: pause, resume, cancel, retry failed documents, register workers."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import attempts, batches, documents, workers
from ledger.errors import Conflict, NotFound
from ledger.model import Batch
from ledger.queue.endings import mark_completed
from ledger.queue.events import record_events
from ledger.queue.submit import load_batch
from ledger.states import BatchState, DocumentStatus


async def _batch_in_scope(
    conn: AsyncConnection, batch_id: str, owner: str | None, *, for_update: bool = True
) -> Batch:
    batch = await load_batch(conn, batch_id, for_update=for_update, deleting=False)
    if batch is None or (owner is not None and batch.owner != owner):
        raise NotFound(f"no batch {batch_id!r}")
    return batch


def _refuse_finished(batch: Batch, action: str) -> None:
    """A batch with nothing left to do cannot be paused or cancelled: saying it was would
    leave a complete batch labelled paused, or hide its results behind "cancelled"."""
    if batch.state == BatchState.CANCELLED:
        raise Conflict(f"batch {batch.id!r} is cancelled: it cannot be {action}")
    if batch.total and batch.complete:
        raise Conflict(
            f"batch {batch.id!r} is complete (every document finished): it cannot be {action}"
        )


async def pause(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, reason: str | None, now: datetime
) -> Batch:
    """Stop claiming the batch's documents; running ones finish. Idempotent."""
    batch = await _batch_in_scope(conn, batch_id, owner)
    _refuse_finished(batch, "paused")
    if batch.state == BatchState.ACTIVE:
        text = reason or "paused by request"
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(state=BatchState.PAUSED.value, pause_reason=text, updated_at=now)
        )
        await record_events(conn, now, [(batch_id, None, "batch_paused", {"reason": text})])
    return await _batch_in_scope(conn, batch_id, owner, for_update=False)


async def resume(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, now: datetime
) -> Batch:
    """Claim the batch's documents again, with a fresh circuit-breaker window. Idempotent."""
    batch = await _batch_in_scope(conn, batch_id, owner)
    if batch.state == BatchState.CANCELLED:
        raise Conflict(f"batch {batch_id!r} is cancelled and cannot be resumed")
    if batch.state == BatchState.PAUSED:
        last_attempt = (
            await conn.execute(select(func.coalesce(func.max(attempts.c.id), 0)))
        ).scalar_one()
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(
                state=BatchState.ACTIVE.value,
                pause_reason=None,
                breaker_after_attempt=last_attempt,
                updated_at=now,
            )
        )
        await record_events(conn, now, [(batch_id, None, "batch_resumed", None)])
        await backend_of(conn).announce_due(conn, [batch_id])
    return await _batch_in_scope(conn, batch_id, owner, for_update=False)


async def cancel(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, now: datetime
) -> Batch:
    """Cancel every pending document; running ones finish (a retry becomes cancelled)."""
    batch = await _batch_in_scope(conn, batch_id, owner)
    _refuse_finished(batch, "cancelled")
    if batch.state != BatchState.CANCELLED:
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(state=BatchState.CANCELLED.value, pause_reason=None, updated_at=now)
        )
        result = await conn.execute(
            update(documents)
            .where(
                documents.c.batch_id == batch_id,
                documents.c.status == DocumentStatus.PENDING.value,
            )
            .values(status=DocumentStatus.CANCELLED.value, finished_at=now, updated_at=now)
        )
        await record_events(
            conn, now, [(batch_id, None, "batch_cancelled", {"documents": result.rowcount})]
        )
        await mark_completed(conn, [batch_id], now)
    return await _batch_in_scope(conn, batch_id, owner, for_update=False)


async def retry_failed(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    code: str | None,
    now: datetime,
) -> int:
    """Put the batch's failed documents (only those with ``code``, if given) back to pending.

    Each gets a fresh budget of attempts; its earlier attempts stay in the audit trail.
    Returns how many documents were put back.
    """
    batch = await _batch_in_scope(conn, batch_id, owner)
    if batch.state == BatchState.CANCELLED:
        raise Conflict(f"batch {batch_id!r} is cancelled")
    condition = [
        documents.c.batch_id == batch_id,
        documents.c.status == DocumentStatus.FAILED.value,
    ]
    if code is not None:
        condition.append(documents.c.error_code == code)
    result = await conn.execute(
        update(documents)
        .where(*condition)
        .values(
            status=DocumentStatus.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            finished_at=None,
            updated_at=now,
        )
    )
    count = result.rowcount
    if count:
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(completed_at=None, updated_at=now)
        )
        await record_events(
            conn, now, [(batch_id, None, "batch_retry", {"documents": count, "code": code})]
        )
        if batch.state == BatchState.ACTIVE:
            await backend_of(conn).announce_due(conn, [batch_id])
    return count


async def register_worker(
    conn: AsyncConnection, *, concurrency: int, now: datetime, processors: Sequence[str] = ()
) -> str:
    """Record a new worker, with the processors it can run, and return its id (host, pid
    and a random part)."""
    hostname = socket.gethostname()
    worker_id = f"{hostname[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
    await conn.execute(
        insert(workers).values(
            id=worker_id,
            hostname=hostname,
            pid=os.getpid(),
            concurrency=concurrency,
            processors=sorted(set(processors)),
            started_at=now,
            heartbeat_at=now,
        )
    )
    return worker_id


async def worker_stopped(
    conn: AsyncConnection, worker_id: str, *, now: datetime, finished: int | None = None
) -> None:
    """Mark the worker stopped (with its final count of finished documents). Leases it
    still holds simply run out and are rescued."""
    values: dict[str, Any] = {"stopped_at": now, "heartbeat_at": now}
    if finished is not None:
        values["documents_finished"] = finished
    await conn.execute(update(workers).where(workers.c.id == worker_id).values(**values))
