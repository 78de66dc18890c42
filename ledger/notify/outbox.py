"""The sender's transactions: claim due deliveries with a lease, record each attempt.

A claimed delivery is leased like a document: if the sender dies while posting (kill -9),
the lease runs out and the next sender posts it again with the same webhook-id. Recording
an attempt checks the lease token, so a sender whose lease ran out cannot overwrite the
outcome of the one that took over. The attempts of one round are recorded in one
transaction: a commit per POST made the database, not the network, the bottleneck.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.db.models import webhook_attempts, webhook_deliveries, webhooks
from ledger.model import Outgoing, SendResult
from ledger.queue import leasing

_d = webhook_deliveries
MAX_ERROR = 2000


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return leasing.due(_d, now)


async def anything_to_do(conn: AsyncConnection, *, now: datetime) -> tuple[bool, bool]:
    """(any webhook exists, any delivery is due): a read, so an idle server does not take
    SQLite's write lock every few seconds for nothing."""
    hooks = (await conn.execute(select(webhooks.c.id).limit(1))).first() is not None
    due = (await conn.execute(select(_d.c.id).where(*_due(now)).limit(1))).first() is not None
    return hooks, due


async def claim(
    conn: AsyncConnection, *, now: datetime, lease: timedelta, limit: int
) -> list[Outgoing]:
    """Lease up to ``limit`` due deliveries, oldest due first."""
    read = (
        select(
            _d.c.id,
            _d.c.event_id,
            _d.c.body,
            _d.c.attempts,
            _d.c.created_at,
            _d.c.lease_token,
            webhooks.c.url,
            webhooks.c.secret,
        )
        .join(webhooks, webhooks.c.id == _d.c.webhook_id)
        .order_by(_d.c.next_attempt_at, _d.c.id)
    )
    return await leasing.claim_due(conn, _d, read, Outgoing, now=now, lease=lease, limit=limit)


async def record(
    conn: AsyncConnection,
    outgoing: Outgoing,
    result: SendResult,
    *,
    started_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    give_up_after: timedelta,
    rng: random.Random | None = None,
) -> str | None:
    """Record one attempt and what follows: delivered (2xx), due again after a backoff, or
    failed once ``give_up_after`` has passed since the event. Returns the new status, or
    None when the lease is no longer ours (it ran out and another sender took the delivery,
    or its webhook was removed): then nothing is written."""
    attempt = outgoing.attempts + 1
    if result.acknowledged:
        status, next_at = "delivered", None
    else:
        next_at = now + timedelta(seconds=policy.delay(attempt, rng=rng))
        status = "failed" if next_at - outgoing.created_at > give_up_after else "pending"
        if status == "failed":
            next_at = None
    error = result.error[:MAX_ERROR] if result.error else None
    if error is None and not result.acknowledged:
        error = f"HTTP {result.status_code}"
    changed = await conn.execute(
        update(_d)
        .where(_d.c.id == outgoing.id, _d.c.lease_token == outgoing.lease_token)
        .values(
            status=status,
            attempts=attempt,
            next_attempt_at=next_at or now,
            lease_token=None,
            lease_expires_at=None,
            last_status_code=result.status_code,
            last_error=error,
            updated_at=now,
            finished_at=None if status == "pending" else now,
        )
    )
    if changed.rowcount != 1:
        return None
    await conn.execute(
        insert(webhook_attempts).values(
            delivery_id=outgoing.id,
            attempt=attempt,
            started_at=started_at,
            finished_at=now,
            status_code=result.status_code,
            error=error,
            next_attempt_at=next_at,
        )
    )
    return status
