"""The read side: counts, rate, ETA, listings and the event log. Never writes."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, bindparam, literal, or_, select, text

from ledger.db.models import attempts, batches, documents
from ledger.db.types import UTCDateTime
from ledger.errors import InvalidInput, NotFound
from ledger.model import (
    AttemptInfo,
    Batch,
    DocumentInfo,
    FailureGroup,
    Page,
    Progress,
)
from ledger.queue import status_reads
from ledger.queue.rows import attempt_from_row, batch_from_row, document_from_row
from ledger.states import BatchState, BatchStatus, DocumentStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def _encode_cursor(*values: Any) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise InvalidInput("malformed cursor") from exc
    if not isinstance(values, list) or len(values) != size:
        raise InvalidInput("malformed cursor")
    return values


def _scoped(query: Any, owner: str | None) -> Any:
    """Only ``owner``'s batches (all for None), never one being deleted (ledger.queue.deletion):
    a half-deleted batch is not shown at all."""
    query = query.where(batches.c.deleting_at.is_(None))
    return query if owner is None else query.where(batches.c.owner == owner)


class ConnectionRows:
    """The status statements (:mod:`ledger.queue.status_reads`) run on the ledger's own
    connection, SQLite or PostgreSQL; timestamps are bound as the UTC column type binds them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        stamps = [
            bindparam(k, type_=UTCDateTime) for k, v in params.items() if isinstance(v, datetime)
        ]
        found = await self._conn.execute(text(sql).bindparams(*stamps), dict(params))
        return found.mappings().all()


async def get_batch(conn: AsyncConnection, batch_id: str, *, owner: str | None) -> Batch:
    return await status_reads.get_batch(ConnectionRows(conn), batch_id, owner=owner)


async def progress(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, now: datetime
) -> Progress:
    """Counts per status (exact, from the counters), recent rate and ETA for one batch."""
    return await status_reads.progress(ConnectionRows(conn), batch_id, owner=owner, now=now)


async def list_batches(
    conn: AsyncConnection,
    *,
    owner: str | None,
    state: BatchState | None,
    cursor: str | None,
    limit: int,
    status: BatchStatus | None = None,
) -> Page[Batch]:
    """Batches newest first, ``limit`` at a time (keyset pagination: stable under inserts).

    ``state`` narrows to batches in that state as people see it: ``active`` is pending or
    running (work left, not paused), never a complete batch whose stored state is still active.
    """
    query = _scoped(select(batches), owner)
    if state is not None:
        query = query.where(_in_state(state))
    if status is not None:
        query = query.where(_has_status(status))
    rows = await newest_first(conn, query, batches.c.created_at, batches.c.id, cursor, limit)
    items = [batch_from_row(r) for r in rows[:limit]]
    next_cursor = _encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def newest_first(
    conn: AsyncConnection,
    query: Any,
    when: Any,
    key: Any,
    cursor: str | None,
    limit: int,
) -> list[Any]:
    """Rows of ``query`` newest first by (``when``, ``key``), after ``cursor`` (keyset:
    stable under inserts). Up to ``limit + 1`` rows: the extra one says a next page exists."""
    if cursor:
        moment, last = _decode_cursor(cursor, 2)
        try:
            moment_at = datetime.fromisoformat(moment)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("malformed cursor") from exc
        query = query.where(or_(when < moment_at, and_(when == moment_at, key < last)))
    ordered = query.order_by(when.desc(), key.desc()).limit(limit + 1)
    return list((await conn.execute(ordered)).all())


def _in_state(state: BatchState) -> ColumnElement[bool]:
    """A stored state less the batches whose status says otherwise (finished ones)."""
    if state == BatchState.ACTIVE:
        return or_(_has_status(BatchStatus.PENDING), _has_status(BatchStatus.RUNNING))
    return _has_status(BatchStatus(state.value))


def _has_status(status: BatchStatus) -> ColumnElement[bool]:
    """The SQL form of ``status_of``: the same word from the counter columns."""
    c = batches.c
    unfinished = c.n_pending + c.n_running
    total = sum((c[f"n_{s.value}"] for s in DocumentStatus), start=literal(0))
    paused_empty = and_(c.state == BatchState.PAUSED.value, total == 0)
    complete = and_(c.state != BatchState.CANCELLED.value, unfinished == 0, ~paused_empty)
    conditions: dict[BatchStatus, ColumnElement[bool]] = {
        BatchStatus.CANCELLED: c.state == BatchState.CANCELLED.value,
        BatchStatus.COMPLETE: complete,
        BatchStatus.PAUSED: and_(c.state == BatchState.PAUSED.value, ~complete),
        BatchStatus.RUNNING: and_(c.state == BatchState.ACTIVE.value, c.n_running > 0),
        BatchStatus.PENDING: and_(c.state == BatchState.ACTIVE.value, c.n_running == 0, ~complete),
    }
    return conditions[status]


async def list_documents(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    status: DocumentStatus | None,
    code: str | None,
    cursor: str | None,
    limit: int,
) -> Page[DocumentInfo]:
    """A batch's documents in id order, filtered by status and error code."""
    await get_batch(conn, batch_id, owner=owner)
    query = select(documents).where(documents.c.batch_id == batch_id)
    if status is not None:
        query = query.where(documents.c.status == status.value)
    if code is not None:
        query = query.where(documents.c.error_code == code)
    if cursor:
        (after,) = _decode_cursor(cursor, 1)
        query = query.where(documents.c.id > int(after))
    rows = (await conn.execute(query.order_by(documents.c.id).limit(limit + 1))).all()
    items = [document_from_row(r) for r in rows[:limit]]
    next_cursor = _encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def get_document(
    conn: AsyncConnection, document_id: int, *, owner: str | None
) -> tuple[DocumentInfo, list[AttemptInfo]]:
    """One document and its attempts, oldest first."""
    query = (
        select(documents)
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(documents.c.id == document_id)
    )
    row = (await conn.execute(_scoped(query, owner))).first()
    if row is None:
        raise NotFound(f"no document {document_id}")
    attempt_rows = (
        await conn.execute(
            select(attempts).where(attempts.c.document_id == document_id).order_by(attempts.c.id)
        )
    ).all()
    return document_from_row(row), [attempt_from_row(r) for r in attempt_rows]


async def failures(
    conn: AsyncConnection, batch_id: str, *, owner: str | None
) -> list[FailureGroup]:
    """The batch's failed documents grouped by error code, largest group first."""
    return await status_reads.failures(ConnectionRows(conn), batch_id, owner=owner)


async def progress_of(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    now: datetime,
    lease_seconds: float,
) -> Progress:
    """The batch's progress with what it waits for and how far its sinks are."""
    return await status_reads.progress_of(
        ConnectionRows(conn), batch_id, owner=owner, now=now, lease_seconds=lease_seconds
    )
