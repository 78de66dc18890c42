"""Finding what to announce: one transaction reads the batch rows and inserts the delivery
rows that are missing.

Detection reads state, not a stream: a batch completed after the webhook was created and
without a delivery for that completion gets one, whether the server was up when it happened
or not. Each row's event id is derived from the fact (webhook, type, batch, occurrence), and
(webhook, event id) is unique, so a scan that runs twice, or after a crash, adds nothing.
A pause undone before the next scan (seconds) is not announced: the scan sees paused batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import batches, documents, events, webhook_deliveries, webhooks
from ledger.db.types import UTCDateTime
from ledger.model import Batch, Webhook
from ledger.notify.events import EventType, batch_data, body, event_id, failed_share, occurrence
from ledger.notify.store import webhook_from_row
from ledger.queue.rows import batch_from_row
from ledger.states import BatchState, DocumentStatus

_d = webhook_deliveries


def _owned_by(hook: Webhook) -> ColumnElement[bool]:
    if hook.owner is None:
        return batches.c.owner.is_(None)
    return batches.c.owner == hook.owner


def _not_announced(
    hook: Webhook, kind: EventType, occurred: ColumnElement[Any] | None = None
) -> ColumnElement[bool]:
    where = [_d.c.webhook_id == hook.id, _d.c.batch_id == batches.c.id, _d.c.event_type == kind]
    if occurred is not None:
        where.append(_d.c.occurred_at == occurred)
    return ~exists().where(*where)


class _Found:
    """Delivery rows for one webhook, made from the batches that call for them."""

    def __init__(self, hook: Webhook, now: datetime) -> None:
        self.hook = hook
        self.now = now
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        kind: EventType,
        batch: Batch,
        happened: datetime | None,
        occurred_at: datetime,
        extra: dict[str, Any],
    ) -> None:
        key = occurrence(happened) if happened is not None else "once"
        self.rows.append(
            {
                "webhook_id": self.hook.id,
                "event_id": event_id(self.hook.id, kind, batch.id, key),
                "event_type": kind.value,
                "batch_id": batch.id,
                "occurred_at": happened or occurred_at,
                "body": body(kind, occurred_at, {**batch_data(batch), **extra}),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": self.now,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )


async def _completed(conn: AsyncConnection, found: _Found, limit: int) -> None:
    hook = found.hook
    query = (
        select(batches)
        .where(
            _owned_by(hook),
            batches.c.completed_at >= hook.created_at,
            batches.c.state != BatchState.CANCELLED.value,
            _not_announced(hook, EventType.COMPLETED, batches.c.completed_at),
        )
        .order_by(batches.c.completed_at)
        .limit(limit)
    )
    for row in (await conn.execute(query)).all():
        batch = batch_from_row(row)
        assert batch.completed_at is not None
        found.add(EventType.COMPLETED, batch, batch.completed_at, batch.completed_at, {})


async def _paused(conn: AsyncConnection, found: _Found, limit: int) -> None:
    hook = found.hook
    query = (
        select(batches)
        .where(_owned_by(hook), batches.c.state == BatchState.PAUSED.value)
        .order_by(batches.c.updated_at)
        .limit(limit)
    )
    for row in (await conn.execute(query)).all():
        batch = batch_from_row(row)
        # The latest pause event says when and why (the breaker marks its own); few rows
        # follow it in the batch's event list (running documents ending), so this is short.
        event = (
            await conn.execute(
                select(events.c.created_at, events.c.data)
                .where(events.c.batch_id == batch.id, events.c.kind == "batch_paused")
                .order_by(events.c.id.desc())
                .limit(1)
            )
        ).first()
        paused_at = event.created_at if event is not None else batch.updated_at
        if paused_at < hook.created_at:
            continue
        data = dict(event.data or {}) if event is not None else {}
        extra = {
            "reason": batch.pause_reason or data.get("reason"),
            "breaker": bool(data.get("breaker", False)),
        }
        found.add(EventType.PAUSED, batch, paused_at, paused_at, extra)


async def _failures(conn: AsyncConnection, found: _Found, limit: int) -> None:
    hook = found.hook
    ended = batches.c.n_done + batches.c.n_failed + batches.c.n_skipped
    query = (
        select(batches)
        .where(
            _owned_by(hook),
            batches.c.state != BatchState.CANCELLED.value,
            batches.c.n_failed > 0,
            batches.c.n_failed > ended * hook.failure_threshold,
            or_(batches.c.completed_at.is_(None), batches.c.completed_at >= hook.created_at),
            _not_announced(hook, EventType.FAILURES),
        )
        .order_by(batches.c.created_at)
        .limit(limit)
    )
    for row in (await conn.execute(query)).all():
        batch = batch_from_row(row)
        extra = {"failed_share": round(failed_share(batch), 6), "threshold": hook.failure_threshold}
        found.add(EventType.FAILURES, batch, None, found.now, extra)


async def _stalled(
    conn: AsyncConnection, found: _Found, limit: int, stall_after: timedelta
) -> None:
    hook = found.hook
    since = found.now - stall_after
    last_finish = (
        select(func.max(documents.c.finished_at))
        .where(documents.c.batch_id == batches.c.id)
        .scalar_subquery()
    )
    # A stall is one episode per last finish: when documents finish again, the next stall
    # is a new event.
    episode = type_coerce(func.coalesce(last_finish, batches.c.created_at), UTCDateTime())
    query = (
        select(batches, episode.label("episode"))
        .where(
            _owned_by(hook),
            batches.c.state == BatchState.ACTIVE.value,
            batches.c.n_pending > 0,
            batches.c.created_at <= since,
            exists().where(
                documents.c.batch_id == batches.c.id,
                documents.c.status == DocumentStatus.PENDING.value,
                documents.c.next_attempt_at <= since,
            ),
            ~exists().where(documents.c.batch_id == batches.c.id, documents.c.finished_at > since),
            _not_announced(hook, EventType.STALLED, episode),
        )
        .order_by(batches.c.created_at)
        .limit(limit)
    )
    for row in (await conn.execute(query)).all():
        batch = batch_from_row(row)
        started: datetime = row.episode
        extra = {
            "stalled_minutes": stall_after.total_seconds() / 60,
            "last_finished_at": occurrence(started) if started != batch.created_at else None,
        }
        found.add(EventType.STALLED, batch, started, found.now, extra)


async def scan(
    conn: AsyncConnection, *, now: datetime, stall_after: timedelta, limit: int = 500
) -> int:
    """Insert the delivery rows every webhook is owed; returns how many were added."""
    hooks = [webhook_from_row(r) for r in (await conn.execute(select(webhooks))).all()]
    added = 0
    for hook in hooks:
        found = _Found(hook, now)
        for kind in hook.events:
            if kind == EventType.COMPLETED:
                await _completed(conn, found, limit)
            elif kind == EventType.PAUSED:
                await _paused(conn, found, limit)
            elif kind == EventType.FAILURES:
                await _failures(conn, found, limit)
            elif kind == EventType.STALLED:
                await _stalled(conn, found, limit, stall_after)
        added += await _insert_new(conn, hook, found.rows)
    return added


async def _insert_new(conn: AsyncConnection, hook: Webhook, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    ids = [r["event_id"] for r in rows]
    query = select(_d.c.event_id).where(and_(_d.c.webhook_id == hook.id, _d.c.event_id.in_(ids)))
    known = set((await conn.execute(query)).scalars())
    new = [r for r in rows if r["event_id"] not in known]
    if new:
        await conn.execute(backend_of(conn).insert_ignoring_duplicates(_d), new)
    return len(new)
