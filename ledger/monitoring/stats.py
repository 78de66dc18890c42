"""Aggregate reads for monitoring (metrics scrapes): bounded, from maintained counters."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import COUNTED_STATUSES, batches
from ledger.model import QueueDepth
from ledger.states import DocumentStatus


async def queue_depths(conn: AsyncConnection, *, owner: str | None, limit: int) -> list[QueueDepth]:
    """Pending and running counts of unfinished batches, most work left first.

    Reads one row per batch (the per-status counters), never the documents; ``limit`` keeps
    a scrape bounded however many batches exist.
    """
    left = batches.c.n_pending + batches.c.n_running
    query = select(batches.c.id, batches.c.owner, batches.c.n_pending, batches.c.n_running).where(
        left > 0, batches.c.deleting_at.is_(None)
    )
    if owner is not None:
        query = query.where(batches.c.owner == owner)
    rows = (await conn.execute(query.order_by(left.desc(), batches.c.id).limit(limit))).all()
    return [
        QueueDepth(batch_id=r.id, owner=r.owner, pending=int(r.n_pending), running=int(r.n_running))
        for r in rows
    ]


async def document_totals(conn: AsyncConnection, *, owner: str | None) -> dict[DocumentStatus, int]:
    """Documents per status over all batches (of ``owner``), summed from the counters."""
    query = select(
        *(func.coalesce(func.sum(batches.c[f"n_{s.value}"]), 0) for s in COUNTED_STATUSES)
    ).where(batches.c.deleting_at.is_(None))
    if owner is not None:
        query = query.where(batches.c.owner == owner)
    row = (await conn.execute(query)).one()
    return {status: int(value) for status, value in zip(COUNTED_STATUSES, row, strict=True)}
