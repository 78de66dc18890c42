"""Figures an operator alerts on, read at scrape time: per unfinished batch, and per table.

Bounded: one row per unfinished active batch (at most ``limit``, oldest first), each figure
read through an index (the oldest due document through the claim index, the last finish
through ``(batch_id, finished_at)``), never a scan of a batch's documents. Table sizes are
the statistics' estimates on PostgreSQL (a count would scan millions of rows per scrape)
and counts on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import batches, documents, metadata
from ledger.states import BatchState, DocumentStatus


@dataclass(frozen=True)
class BatchGauge:
    """One unfinished active batch as alerts see it.

    ``oldest_due_seconds``: how long its oldest due pending document has been due (None when
    none is due). ``failed_ratio``: failed share of its finished documents (None before any
    finished). ``seconds_since_progress``: since its last finished document (or its start),
    given only while it has work that could progress (due or running documents)."""

    batch_id: str
    oldest_due_seconds: float | None
    failed_ratio: float | None
    seconds_since_progress: float | None


def _seconds(later: datetime, earlier: datetime) -> float:
    return max(0.0, (later - earlier).total_seconds())


async def batch_gauges(conn: AsyncConnection, *, now: datetime, limit: int) -> list[BatchGauge]:
    """The figures of up to ``limit`` unfinished active batches, oldest first."""
    oldest_due = (
        select(func.min(documents.c.next_attempt_at))
        .where(
            documents.c.batch_id == batches.c.id,
            documents.c.status == DocumentStatus.PENDING.value,
        )
        .scalar_subquery()
    )
    last_finish = (
        select(func.max(documents.c.finished_at))
        .where(documents.c.batch_id == batches.c.id)
        .scalar_subquery()
    )
    query = (
        select(
            batches.c.id,
            batches.c.n_done,
            batches.c.n_failed,
            batches.c.n_skipped,
            batches.c.n_running,
            batches.c.created_at,
            batches.c.started_at,
            oldest_due.label("oldest_due"),
            last_finish.label("last_finish"),
        )
        .where(
            batches.c.state == BatchState.ACTIVE.value,
            batches.c.n_pending + batches.c.n_running > 0,
        )
        .order_by(batches.c.created_at, batches.c.id)
        .limit(limit)
    )
    figures = []
    for row in await conn.execute(query):
        finished = int(row.n_done) + int(row.n_failed) + int(row.n_skipped)
        due = row.oldest_due is not None and row.oldest_due <= now
        since = row.last_finish or row.started_at or row.created_at
        figures.append(
            BatchGauge(
                batch_id=row.id,
                oldest_due_seconds=_seconds(now, row.oldest_due) if due else None,
                failed_ratio=int(row.n_failed) / finished if finished else None,
                seconds_since_progress=(
                    _seconds(now, since) if due or int(row.n_running) > 0 else None
                ),
            )
        )
    return figures


async def table_rows(conn: AsyncConnection) -> dict[str, int]:
    """Rows per ledger table: estimates on PostgreSQL, counts on SQLite."""
    return await backend_of(conn).table_row_counts(conn, metadata.tables)
