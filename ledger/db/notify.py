"""Waking idle workers when documents become due: PostgreSQL LISTEN/NOTIFY.

The core calls :func:`announce_due` in the transaction that makes documents claimable
(submit, resume, retry of failed documents, rescue of expired leases, release on shutdown).
PostgreSQL delivers the notification when, and only if, that transaction commits, and folds
identical notifications of one transaction into one. Each worker keeps one
:class:`DueListener` connection that turns notifications into a callback. SQLite has no
such channel: there the worker's timed poll is the only wake-up (it shares one machine).

Notifications are a hint, never the source of truth: one that is lost (listener
reconnecting, server restart) costs at most one poll interval, because workers still poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

CHANNEL = "ledger_due"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def announce_due(conn: AsyncConnection, batch_ids: Iterable[str]) -> None:
    """Tell listening workers, once this transaction commits, that batches have due work.

    The payload is the batch id (listeners that work on other batches may ignore it).
    PostgreSQL only (SQLite has no such channel: see ``backends``).
    """
    for batch_id in sorted(set(batch_ids)):
        # pg_notify payloads are limited to 8000 bytes; batch ids are at most 200 characters.
        await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": batch_id})


class DueListener:
    """One dedicated connection that LISTENs for due work and calls ``on_due(batch_id)``.

    The connection is taken from the engine's pool (same URL, credentials and TLS settings
    as every other connection) and held for the listener's life. If it drops, the listener
    reconnects with capped, jittered backoff and then calls ``on_due(None)``: work announced
    while it was deaf is found by the claim that follows. ``check_seconds`` bounds how long a
    silently dead connection (a failover, a cut network) goes unnoticed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        on_due: Callable[[str | None], None],
        *,
        check_seconds: float = 15.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.engine = engine
        self.on_due = on_due
        self.check_seconds = check_seconds
        self.max_backoff = max_backoff
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.backend_pid: int | None = None  # the server process of the listening connection
        self._task: asyncio.Task[None] | None = None

    async def start(self, *, wait_seconds: float = 10.0) -> None:
        """Start listening; return once the first LISTEN is in place (at most ``wait_seconds``)."""
        self._task = asyncio.create_task(self._run(), name="ledger-due-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), wait_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_due(payload or None)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0  # the connection worked for a while, then dropped
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is unreachable: try again later
                failures += 1
                log.warning("listening for due work failed (%s); polling meanwhile", exc)
            self.connected.clear()
            delay = min(self.max_backoff, 0.5 * 2 ** min(failures, 10))
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            self.reconnects += 1

    async def _listen_once(self) -> None:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _c: lost.set())
            try:
                await driver.add_listener(CHANNEL, self._notified)
                self.backend_pid = driver.get_server_pid()
                log.debug("listening for due work (server pid %s)", self.backend_pid)
                self.connected.set()
                self.on_due(None)  # anything announced before we listened
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), self.check_seconds)
                    if not lost.is_set():
                        # asyncpg notices a dead socket only when it uses it.
                        await driver.execute("SELECT 1", timeout=self.check_seconds)
                log.warning("the listening connection was closed; reconnecting")
            finally:
                self.backend_pid = None
                # Never hand a LISTENing (or broken) connection back to the pool.
                await conn.invalidate()
