"""Retention: what maintenance removes once it is old enough, in bounded steps.

Each function deletes at most ``limit`` rows in the caller's transaction and returns how
many; the caller repeats it until fewer come back, so no transaction holds the write lock
for long, whatever the backlog. What is kept, and why:

- documents and the batch rows stay, with their per-status counters: progress, rate, ETA
  and the failure groups are read from them, not from events or attempts;
- events and attempts go only for *finished* batches (nothing pending or running) that
  finished before the cutoff; the batches still being worked on keep all of theirs, so
  their rate, throughput chart and circuit breaker are untouched;
- the last attempt of every failed document stays: it is the "why did this fail" answer;
- a worker row goes once it stopped (or last beat) before the cutoff and no attempt or
  lease names it any more (the foreign keys would refuse it otherwise);
- an ended upload's row goes once its file is removed and it ended before the cutoff.

``batch_requests`` is kept: without its row a retried create request with a different
body would extend the batch instead of being refused, so pruning it changes an answer.
``embedding_cache`` is kept: it records no last use, and every row dropped is text sent
to an embedding service again (and paid for again); it grows with distinct texts only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, and_, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import attempts, batches, documents, events, uploads, workers
from ledger.states import DocumentStatus, UploadState

STEP_ROWS = 2_000  # rows deleted per transaction


def _finished_before(cutoff: datetime) -> Select[tuple[str]]:
    """Ids of the batches with nothing pending or running, finished before ``cutoff``."""
    return select(batches.c.id).where(
        batches.c.n_pending == 0,
        batches.c.n_running == 0,
        func.coalesce(batches.c.completed_at, batches.c.updated_at) < cutoff,
    )


async def prune_events(conn: AsyncConnection, *, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` events of batches finished before ``cutoff``."""
    ids = (
        select(events.c.id)
        .where(events.c.batch_id.in_(_finished_before(cutoff)))
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(events).where(events.c.id.in_(ids)))
    return int(result.rowcount)


async def prune_attempts(conn: AsyncConnection, *, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` attempts of batches finished before ``cutoff``, except the
    last attempt of each failed document."""
    later = attempts.alias("later")
    last_of_failed = and_(
        exists().where(
            documents.c.id == attempts.c.document_id,
            documents.c.status == DocumentStatus.FAILED.value,
        ),
        ~exists().where(later.c.document_id == attempts.c.document_id, later.c.id > attempts.c.id),
    )
    ids = (
        select(attempts.c.id)
        .where(attempts.c.batch_id.in_(_finished_before(cutoff)), ~last_of_failed)
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(attempts).where(attempts.c.id.in_(ids)))
    return int(result.rowcount)


async def prune_workers(conn: AsyncConnection, *, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` worker rows silent since before ``cutoff`` that no attempt
    and no lease names."""
    ids = (
        select(workers.c.id)
        .where(
            func.coalesce(workers.c.stopped_at, workers.c.heartbeat_at) < cutoff,
            ~exists().where(attempts.c.worker_id == workers.c.id),
            ~exists().where(
                documents.c.status == DocumentStatus.RUNNING.value,
                documents.c.lease_owner == workers.c.id,
            ),
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(workers).where(workers.c.id.in_(ids)))
    return int(result.rowcount)


async def prune_uploads(conn: AsyncConnection, *, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` rows of uploads that ended before ``cutoff`` and whose file
    is already removed."""
    ids = (
        select(uploads.c.id)
        .where(
            uploads.c.state.in_([UploadState.TERMINATED.value, UploadState.EXPIRED.value]),
            uploads.c.files_removed_at.is_not(None),
            uploads.c.ended_at < cutoff,
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = await conn.execute(delete(uploads).where(uploads.c.id.in_(ids)))
    return int(result.rowcount)
