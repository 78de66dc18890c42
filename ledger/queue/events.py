"""The event log: an append-only row per notable transition, for live views (SSE).

Readers follow the log in the order it becomes visible, which is not always id order: on
PostgreSQL ids come from a sequence before commit, so two transactions may commit ids 6 and
then 5. Each row therefore carries its writing transaction's id (``txid``; 0 on SQLite,
whose single writer commits ids in order), the log is read in (txid, id) order, and only up
to the oldest transaction that may still be running (its "settled" part). A client's
position is the id of the last event it saw; its txid is looked up, so clients keep
plain integer ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import documents, events
from ledger.model import Event
from ledger.queue.progress import get_batch
from ledger.queue.rows import event_from_row

# (batch_id, document_id, kind, data)
EventRow = tuple[str, int | None, str, dict[str, Any] | None]


async def record_events(conn: AsyncConnection, now: datetime, rows: Sequence[EventRow]) -> None:
    """Append events in the caller's transaction, so they commit with what they describe."""
    if not rows:
        return
    await conn.execute(
        insert(events),
        [
            {"batch_id": b, "document_id": d, "kind": k, "data": data, "created_at": now}
            for b, d, k, data in rows
        ],
    )


async def read_events(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, after_id: int, limit: int
) -> list[Event]:
    """The batch's settled events after the one with id ``after_id``, in visibility order."""
    await get_batch(conn, batch_id, owner=owner)
    query = (
        select(events, documents.c.source.label("document_source"))
        .select_from(events.outerjoin(documents, documents.c.id == events.c.document_id))
        .where(events.c.batch_id == batch_id, await _after(conn, batch_id, after_id))
        .order_by(events.c.txid, events.c.id)
        .limit(limit)
    )
    horizon = backend_of(conn).settled_txid()
    if horizon is not None:
        query = query.where(events.c.txid < horizon)
    return [event_from_row(r) for r in (await conn.execute(query)).all()]


async def has_events_after(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, after_id: int
) -> bool:
    """Whether any committed event follows ``after_id``, settled or not.

    A stream whose batch is complete asks this before it ends: an event committed before the
    completion may still be behind the settled horizon. (Asking "is anything held back?"
    instead would race: the read and the question see different snapshots, and an event
    settling in between would be neither read nor held back.)
    """
    await get_batch(conn, batch_id, owner=owner)
    later = exists().where(events.c.batch_id == batch_id, await _after(conn, batch_id, after_id))
    return bool((await conn.execute(select(later))).scalar())


async def _after(conn: AsyncConnection, batch_id: str, after_id: int) -> ColumnElement[bool]:
    """Rows after the event ``after_id`` in (txid, id) order.

    An id the batch does not have (never sent, or pruned) stands for the latest transaction
    that wrote an id up to it.
    """
    txid = 0
    if after_id > 0:
        own = select(events.c.txid).where(events.c.id == after_id, events.c.batch_id == batch_id)
        latest = select(func.max(events.c.txid)).where(
            events.c.batch_id == batch_id, events.c.id <= after_id
        )
        found = await conn.execute(
            select(func.coalesce(own.scalar_subquery(), latest.scalar_subquery(), 0))
        )
        txid = int(found.scalar() or 0)
    return or_(events.c.txid > txid, and_(events.c.txid == txid, events.c.id > after_id))
