"""The read side: counts, rate, ETA, listings and the event log. Never writes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, literal, or_, select

from ledger.db.models import attempts, batches, documents
from ledger.errors import InvalidInput, NotFound
from ledger.model import (
    AttemptInfo,
    Batch,
    DocumentInfo,
    FailureGroup,
    Page,
    Progress,
)
from ledger.queue.rows import attempt_from_row, batch_from_row, document_from_row
from ledger.states import BatchState, BatchStatus, DocumentStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

RATE_WINDOW = timedelta(seconds=60)
RATE_SAMPLE = 1_000  # at most this many recent finishes are looked at, however big the batch


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


async def get_batch(conn: AsyncConnection, batch_id: str, *, owner: str | None) -> Batch:
    row = (
        await conn.execute(_scoped(select(batches).where(batches.c.id == batch_id), owner))
    ).first()
    if row is None:
        raise NotFound(f"no batch {batch_id!r}")
    return batch_from_row(row)


async def recent_rate(
    conn: AsyncConnection, batch: Batch, now: datetime
) -> tuple[float | None, datetime | None]:
    """Documents finished per second recently, and the time of the last finish.

    Looks at the last minute, or at the last RATE_SAMPLE finishes if that is shorter, so
    the cost stays bounded however fast the batch runs or however large it is.
    """
    since = now - RATE_WINDOW
    recent = (
        select(documents.c.finished_at)
        .where(
            documents.c.batch_id == batch.id,
            documents.c.finished_at >= since,
            documents.c.status != DocumentStatus.CANCELLED.value,
            # Documents skipped at submit were not processed: they say nothing of the pace.
            documents.c.attempts > 0,
        )
        .order_by(documents.c.finished_at.desc())
        .limit(RATE_SAMPLE)
        .subquery()
    )
    count, oldest, newest = (
        await conn.execute(
            select(
                func.count(),
                func.min(recent.c.finished_at),
                func.max(recent.c.finished_at),
            )
        )
    ).one()
    last = newest
    if last is None:
        last = (
            await conn.execute(
                select(func.max(documents.c.finished_at)).where(documents.c.batch_id == batch.id)
            )
        ).scalar_one()
    if not count:
        return (0.0 if batch.started_at else None), _aware(last)
    oldest = _aware(oldest)
    if count >= RATE_SAMPLE and oldest is not None:
        span = (now - oldest).total_seconds()
    else:
        start = max(since, batch.started_at or since)
        span = (now - start).total_seconds()
    return (count / span if span > 0 else None), _aware(last)


async def average_rate(conn: AsyncConnection, batch: Batch) -> float | None:
    """Documents processed per second from the first claim to completion."""
    assert batch.started_at is not None and batch.completed_at is not None
    span = (batch.completed_at - batch.started_at).total_seconds()
    processed = (
        await conn.execute(
            select(func.count()).where(
                documents.c.batch_id == batch.id,
                documents.c.status != DocumentStatus.CANCELLED.value,
                documents.c.attempts > 0,
                documents.c.finished_at.is_not(None),
            )
        )
    ).scalar_one()
    return processed / span if span > 0 else None


def _aware(value: Any) -> datetime | None:
    # Aggregates over a subquery may come back as text on SQLite.
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def progress(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, now: datetime
) -> Progress:
    """Counts per status (exact, from the counters), recent rate and ETA for one batch."""
    batch = await get_batch(conn, batch_id, owner=owner)
    rate, last = await recent_rate(conn, batch, now)
    if batch.completed_at is not None and batch.started_at is not None:
        # Finished: the recent rate only decays towards 0; the run's average says more.
        rate = await average_rate(conn, batch)
    left = batch.counts[DocumentStatus.PENDING] + batch.counts[DocumentStatus.RUNNING]
    eta = None
    if left == 0:
        eta = 0.0
    elif rate and batch.state == BatchState.ACTIVE:
        eta = left / rate
    return Progress(batch=batch, rate=rate, eta_seconds=eta, last_finished_at=last)


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
    await get_batch(conn, batch_id, owner=owner)
    rows = (
        await conn.execute(
            select(
                documents.c.error_code,
                func.count().label("n"),
                func.max(documents.c.error_message).label("example"),
            )
            .where(
                documents.c.batch_id == batch_id,
                documents.c.status == DocumentStatus.FAILED.value,
            )
            .group_by(documents.c.error_code)
            .order_by(func.count().desc(), documents.c.error_code)
        )
    ).all()
    return [FailureGroup(code=r.error_code, count=r.n, example_message=r.example) for r in rows]
