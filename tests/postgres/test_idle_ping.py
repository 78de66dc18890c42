"""Pooled PostgreSQL connections are pinged before reuse only after being idle.

The server ends a pooled connection (as a restart or failover would) while it sits in the
pool: one idle past the threshold is pinged, found dead and replaced, and the caller never
sees it; one handed back a moment ago is not pinged (the three round trips a ping costs
were a quarter of a worker's finish-and-claim), so its next statement meets the dead
connection, as a statement sent just after a ping would.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ledger.db.engine import create_engine
from ledger.db.idle_ping import PING_AFTER_IDLE_SECONDS, ping_when_idle
from tests.conftest import settings_for, sql

pytestmark = pytest.mark.postgres


async def _pid_of_pooled_connection(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _end_backend(sync_url: str, pid: int) -> None:
    assert sql(sync_url, f"SELECT pg_terminate_backend({pid})") == [(True,)]
    sql(sync_url, f"SELECT pg_sleep(0.1) FROM pg_stat_activity WHERE pid = {pid}")


async def test_a_connection_idle_past_the_threshold_is_pinged_and_replaced(
    pg_url: str, pg_sync_url: str
) -> None:
    # The ledger's own engine: no ping at every checkout, the idle one instead.
    engine = create_engine(settings_for(pg_url), pool_size=1, max_overflow=0)
    assert not engine.sync_engine.pool._pre_ping
    try:
        first = await _pid_of_pooled_connection(engine)
        _end_backend(pg_sync_url, first)
        await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.1)
        second = await _pid_of_pooled_connection(engine)
        assert second != first
    finally:
        await engine.dispose()


async def test_a_connection_back_a_moment_ago_is_reused_without_a_ping(
    pg_url: str, pg_sync_url: str
) -> None:
    engine = create_async_engine(pg_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds=3600.0)  # nothing counts as idle
    try:
        first = await _pid_of_pooled_connection(engine)
        _end_backend(pg_sync_url, first)
        with pytest.raises(exc.DBAPIError) as failed:
            await _pid_of_pooled_connection(engine)
        assert failed.value.connection_invalidated
        # The pool replaced it: the next checkout works.
        assert await _pid_of_pooled_connection(engine) != first
    finally:
        await engine.dispose()
