"""Leases are judged by the server's clock, read once a minute rather than per transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from ledger.app import Ledger
from ledger.db.server_clock import ServerClock
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql

pytestmark = pytest.mark.postgres


async def test_transactions_do_not_each_ask_the_server_for_the_time(
    pg_url: str, pg_sync_url: str
) -> None:
    ledger = await Ledger.open(settings_for(pg_url))
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", seen)
    try:
        for n in range(10):
            await ledger.queue.submit(BatchSpec(id=f"b{n}", processor="noop"), [SourceSpec("/a")])
        asked = [s for s in statements if "clock_timestamp()" in s or "now()" in s.lower()]
        assert len(asked) == 1, asked  # the first transaction only
        ours = (await ledger.reads.batch("b9")).created_at
        (server,) = sql(pg_sync_url, "SELECT now()")[0]
        # The carried-forward estimate is the server's time, not this machine's idea of it.
        assert abs(server.astimezone(UTC) - ours) < timedelta(seconds=30)
    finally:
        await ledger.close()


async def test_the_estimate_moves_with_the_local_monotonic_clock_and_resyncs(
    pg_url: str,
) -> None:
    ticks = [1000.0]
    clock = ServerClock(resync_seconds=60, monotonic=lambda: ticks[0])
    ledger = await Ledger.open(settings_for(pg_url))
    try:
        async with ledger.runner.transaction(write=False) as conn:
            first = await clock.now(conn)
            ticks[0] += 12.5
            assert await clock.now(conn) - first == timedelta(seconds=12.5)
            ticks[0] += 60
            resynced = await clock.now(conn)  # a new reading: the server's real time again
        server_now = datetime.now(UTC)  # server and tests share this machine's clock
        assert abs(resynced - server_now) < timedelta(seconds=30)
        assert resynced - first < timedelta(seconds=72.5)
    finally:
        await ledger.close()
