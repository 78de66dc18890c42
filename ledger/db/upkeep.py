"""Database upkeep that must run outside any transaction."""

from __future__ import annotations

import logging
import sqlite3

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


async def optimize(engine: AsyncEngine) -> bool:
    """SQLite: ``PRAGMA optimize`` (refresh the planner's statistics where they are stale)
    and ``PRAGMA wal_checkpoint(TRUNCATE)`` (copy the write-ahead log into the database and
    cut the log file back to nothing). Both run on the driver connection itself, outside
    any transaction: a checkpoint cannot move past a reader, its own included.
    (PostgreSQL has autovacuum for this.) Returns whether anything ran.

    A writer holding the database (a deletion step, a claim) makes them fail with "database
    is locked": that is ordinary contention, not a fault, so the upkeep waits for its next
    turn instead of failing the maintenance pass."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            for pragma in ("PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"):
                cursor = await driver.execute(pragma)
                await cursor.close()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            log.info("SQLite upkeep postponed: the database is busy (%s)", exc)
            return False
    return True
