"""One process at a time: the lock maintenance runners compete for.

PostgreSQL: a session-level advisory lock taken with ``pg_try_advisory_lock`` on a connection
of its own, in autocommit mode (no transaction stays open while it is held, so nothing waits
on it and VACUUM is not held back). The server drops the lock when that session ends, so a
runner killed with SIGKILL frees it at once.

SQLite has no advisory locks: the ``maintenance`` table holds one lease row (owner and
expiry), taken with a guarded UPDATE while it is free or expired and renewed by its owner
between steps. A runner killed with SIGKILL keeps it until it expires; then another takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import or_, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.db.models import maintenance

LEADER_ROW = "leader"
ADVISORY_NAME = "ledger.maintenance"

# Runs ``work(conn, now)`` in one committed write transaction (the ledger's runner).
Transact = Callable[[Callable[[AsyncConnection, datetime], Awaitable[bool]]], Awaitable[bool]]


class Held:
    """The lock, while held. ``renew`` pushes a lease forward (a no-op for advisory locks)
    and returns False once the lease was lost."""

    def __init__(self, renew: Callable[[], Awaitable[bool]]) -> None:
        self._renew = renew

    async def renew(self) -> bool:
        return await self._renew()


async def _take_lease(
    transact: Transact, owner: str, lease: timedelta, *, renew_only: bool
) -> bool:
    async def work(conn: AsyncConnection, now: datetime) -> bool:
        free = or_(
            maintenance.c.owner == owner,
            maintenance.c.owner.is_(None),
            maintenance.c.expires_at <= now,
        )
        result = await conn.execute(
            update(maintenance)
            .where(
                maintenance.c.name == LEADER_ROW,
                maintenance.c.owner == owner if renew_only else free,
            )
            .values(owner=owner, expires_at=now + lease)
        )
        return bool(result.rowcount)

    return await transact(work)


async def _release_lease(transact: Transact, owner: str) -> None:
    async def work(conn: AsyncConnection, now: datetime) -> bool:
        await conn.execute(
            update(maintenance)
            .where(maintenance.c.name == LEADER_ROW, maintenance.c.owner == owner)
            .values(owner=None, expires_at=None)
        )
        return True

    await transact(work)


@asynccontextmanager
async def advisory_leadership(engine: AsyncEngine) -> AsyncIterator[Held | None]:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        key = {"name": ADVISORY_NAME}
        taken = (
            await conn.execute(text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))"), key)
        ).scalar_one()
        if not taken:
            yield None
            return
        try:

            async def still_held() -> bool:
                return True

            yield Held(still_held)
        finally:
            try:
                await conn.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))"), key
                )
            except BaseException:
                # The session may still hold the lock: never hand it back to the pool.
                await conn.invalidate()
                raise


@asynccontextmanager
async def lease_leadership(
    transact: Transact, owner: str, lease: timedelta
) -> AsyncIterator[Held | None]:
    # Taking and giving back the lease run to their end even when the process is stopping
    # (a cancel that lands mid-transaction would leave the lease held until it expires,
    # keeping the next runner waiting).
    taking = asyncio.ensure_future(_take_lease(transact, owner, lease, renew_only=False))
    try:
        taken = await asyncio.shield(taking)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            if await taking:
                await asyncio.shield(_release_lease(transact, owner))
        raise
    if not taken:
        yield None
        return
    try:

        async def renew() -> bool:
            return await _take_lease(transact, owner, lease, renew_only=True)

        yield Held(renew)
    finally:
        await asyncio.shield(_release_lease(transact, owner))
