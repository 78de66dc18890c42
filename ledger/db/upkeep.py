"""Database upkeep that must run outside any transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine


async def optimize(engine: AsyncEngine) -> bool:
    """SQLite: ``PRAGMA optimize`` (refresh the planner's statistics where they are stale)
    and ``PRAGMA wal_checkpoint(TRUNCATE)`` (copy the write-ahead log into the database and
    cut the log file back to nothing). Both run on the driver connection itself, outside
    any transaction: a checkpoint cannot move past a reader, its own included.
    PostgreSQL has autovacuum for this: nothing to do. Returns whether anything ran."""
    if engine.dialect.name != "sqlite":
        return False
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        for pragma in ("PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"):
            cursor = await driver.execute(pragma)
            await cursor.close()
    return True
