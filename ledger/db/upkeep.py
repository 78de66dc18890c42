"""Database upkeep that must run outside any transaction."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

# Waits between tries of the TRUNCATE checkpoint while another checkpoint or a reader holds
# the log: about six seconds in all, then the upkeep waits for its next turn.
TRUNCATE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)


async def optimize(engine: AsyncEngine) -> bool:
    """SQLite: ``PRAGMA optimize`` (refresh the planner's statistics where they are stale)
    and ``PRAGMA wal_checkpoint(TRUNCATE)`` (copy the write-ahead log into the database and
    cut the log file back to nothing). Both run on the driver connection itself, outside
    any transaction: a checkpoint cannot move past a reader, its own included.
    (PostgreSQL has autovacuum for this.) Returns whether the log was cut back.

    A writer holding the database (a deletion step, a claim) makes them fail with "database
    is locked": that is ordinary contention, not a fault, so the upkeep waits for its next
    turn instead of failing the maintenance pass; so does a log it could not cut back (another
    checkpoint, or a reader, kept it in use): True only when it was."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            cursor = await driver.execute("PRAGMA optimize")
            await cursor.close()
            if await _truncate_log(driver):
                return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            log.info("SQLite upkeep postponed: the database is busy (%s)", exc)
            return False
    log.info("SQLite upkeep postponed: the log is still in use by a checkpoint or a reader")
    return False


async def _truncate_log(driver: Any) -> bool:
    """``wal_checkpoint(TRUNCATE)``, tried again while the log is in use; True once done.

    Another checkpoint under way (the engine's own thread copies the log a few times a
    second) or a reader still on the log: the pragma says so in its result, it does not
    raise. The tries do not wait in SQLite's busy handler (a reader may stay for a long
    time); they wait here, between tries, and the connection gets its timeout back."""
    cursor = await driver.execute("PRAGMA busy_timeout")
    busy_timeout_ms = int((await cursor.fetchone())[0])
    await cursor.close()
    await (await driver.execute("PRAGMA busy_timeout = 0")).close()
    try:
        for delay in (*TRUNCATE_RETRY_DELAYS, None):
            cursor = await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            busy = (await cursor.fetchone())[0]
            await cursor.close()
            if not busy:
                return True
            if delay is not None:
                await asyncio.sleep(delay)
        return False
    finally:
        await (await driver.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")).close()
