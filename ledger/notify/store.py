"""Webhook rows: create, list, remove, and read their deliveries. Every query names its tenant
(``owner``; None is the operator, who sees every webhook)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import webhook_deliveries, webhooks
from ledger.errors import InvalidInput, NotFound
from ledger.model import Delivery, Webhook
from ledger.notify import events, signing
from ledger.notify.hosts import check_url

DEFAULT_FAILURE_THRESHOLD = 0.5
MAX_WEBHOOKS_PER_OWNER = 100


def webhook_from_row(row: Any) -> Webhook:
    m = row._mapping
    return Webhook(
        id=m["id"],
        owner=m["owner"],
        url=m["url"],
        events=list(m["events"]),
        failure_threshold=m["failure_threshold"],
        created_at=m["created_at"],
    )


def delivery_from_row(row: Any) -> Delivery:
    m = row._mapping
    return Delivery(
        id=m["id"],
        webhook_id=m["webhook_id"],
        event_id=m["event_id"],
        event_type=m["event_type"],
        batch_id=m["batch_id"],
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"] if m["status"] == "pending" else None,
        last_status_code=m["last_status_code"],
        last_error=m["last_error"],
        created_at=m["created_at"],
        finished_at=m["finished_at"],
    )


def _scoped(query: Any, owner: str | None) -> Any:
    return query if owner is None else query.where(webhooks.c.owner == owner)


def check_events(names: Sequence[str]) -> tuple[str, ...]:
    """The subscribed event types, deduplicated in the documented order."""
    known = {e.value for e in events.SUBSCRIBABLE}
    unknown = sorted(set(names) - known)
    if unknown or not names:
        raise InvalidInput(
            f"unknown event {', '.join(unknown)}"
            if unknown
            else f"name at least one event (events: {', '.join(sorted(known))})"
        )
    return tuple(e.value for e in events.SUBSCRIBABLE if e.value in names)


async def create(
    conn: AsyncConnection,
    *,
    owner: str | None,
    url: str,
    event_types: Sequence[str],
    failure_threshold: float | None,
    allowed_hosts: Sequence[str],
    now: datetime,
) -> tuple[Webhook, str]:
    """Subscribe ``url`` to events of ``owner``'s batches; returns the webhook and its
    signing secret (shown this once). :class:`NotAllowed` for a host the operator does not
    allow."""
    check_url(url, allowed_hosts)
    chosen = check_events(event_types)
    threshold = DEFAULT_FAILURE_THRESHOLD if failure_threshold is None else failure_threshold
    if not 0 <= threshold < 1:
        raise InvalidInput("failure threshold must be at least 0 and below 1")
    count = (
        await conn.execute(_scoped(select(func.count()).select_from(webhooks), owner))
    ).scalar_one()
    if count >= MAX_WEBHOOKS_PER_OWNER:
        raise InvalidInput(f"at most {MAX_WEBHOOKS_PER_OWNER} webhooks per tenant")
    webhook_id = "wh_" + secrets.token_hex(12)
    secret = signing.new_secret()
    hook = Webhook(
        id=webhook_id,
        owner=owner,
        url=url,
        events=list(chosen),
        failure_threshold=threshold,
        created_at=now,
    )
    await conn.execute(
        insert(webhooks).values(
            id=hook.id,
            owner=owner,
            url=url,
            events=list(chosen),
            failure_threshold=threshold,
            secret=secret,
            created_at=now,
        )
    )
    return hook, secret


async def list_webhooks(conn: AsyncConnection, owner: str | None) -> list[Webhook]:
    query = _scoped(select(webhooks), owner).order_by(webhooks.c.created_at, webhooks.c.id)
    return [webhook_from_row(r) for r in (await conn.execute(query)).all()]


async def get(conn: AsyncConnection, webhook_id: str, owner: str | None) -> Webhook:
    """The webhook, or :class:`NotFound` (also when it is another tenant's)."""
    query = _scoped(select(webhooks).where(webhooks.c.id == webhook_id), owner)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no webhook {webhook_id!r}")
    return webhook_from_row(row)


async def remove(conn: AsyncConnection, webhook_id: str, owner: str | None) -> None:
    """Delete the webhook and its deliveries (pending ones are never sent)."""
    await get(conn, webhook_id, owner)
    await conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


async def deliveries(
    conn: AsyncConnection, webhook_id: str, owner: str | None, *, limit: int
) -> list[Delivery]:
    """The webhook's most recent deliveries, newest first."""
    await get(conn, webhook_id, owner)
    query = (
        select(webhook_deliveries)
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(limit)
    )
    return [delivery_from_row(r) for r in (await conn.execute(query)).all()]


async def enqueue_test(
    conn: AsyncConnection, webhook_id: str, owner: str | None, *, now: datetime
) -> Delivery:
    """A ``webhook.test`` delivery, sent like any other."""
    webhook = await get(conn, webhook_id, owner)
    nonce = secrets.token_hex(8)
    event_id = events.event_id(webhook.id, events.EventType.TEST, nonce, events.occurrence(now))
    data = {"webhook_id": webhook.id, "message": "a test event from the ledger"}
    row = (
        await conn.execute(
            insert(webhook_deliveries)
            .values(
                webhook_id=webhook.id,
                event_id=event_id,
                event_type=events.EventType.TEST.value,
                batch_id=None,
                occurred_at=now,
                body=events.body(events.EventType.TEST, now, data),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(*webhook_deliveries.c)
        )
    ).one()
    return delivery_from_row(row)
