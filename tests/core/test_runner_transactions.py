"""How the runner ends a transaction, on both backends: committed when the work returns,
rolled back when it raises, is cancelled, or the commit itself fails; and in every case the
connection goes back to the pool and the next transaction runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec


async def _priority(ledger: Ledger) -> int:
    return (await ledger.reads.batch("b")).priority


async def _set_priority(conn: AsyncConnection, value: int) -> None:
    await conn.execute(text("UPDATE batches SET priority = :p WHERE id = 'b'"), {"p": value})


def _checked_out(ledger: Ledger) -> int:
    return int(ledger.runner.engine.sync_engine.pool.checkedout())  # type: ignore[attr-defined]


@pytest.fixture
async def batch(ledger: Ledger) -> Ledger:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [SourceSpec("/d/1")])
    return ledger


@pytest.mark.parametrize("brief", [False, True])
async def test_work_that_returns_is_committed(batch: Ledger, brief: bool) -> None:
    async def work(conn: AsyncConnection, _now: Any) -> str:
        await _set_priority(conn, 7)
        return "kept"

    assert await batch.runner.run(work, brief=brief) == "kept"
    assert await _priority(batch) == 7
    assert _checked_out(batch) == 0


@pytest.mark.parametrize("brief", [False, True])
async def test_work_that_raises_is_rolled_back(batch: Ledger, brief: bool) -> None:
    async def work(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 7)
        raise LookupError("the work's own error")

    with pytest.raises(LookupError, match="the work's own error"):
        await batch.runner.run(work, brief=brief)
    assert await _priority(batch) == 0
    assert _checked_out(batch) == 0


async def test_cancelled_work_is_rolled_back_and_frees_the_writer(batch: Ledger) -> None:
    entered = asyncio.Event()

    async def stuck(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 7)
        entered.set()
        await asyncio.Event().wait()  # never set: only a cancel ends it

    task = asyncio.create_task(batch.runner.run(stuck))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _checked_out(batch) == 0
    assert await _priority(batch) == 0

    async def after(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 3)

    await batch.runner.run(after)  # the write lock and the database's lock were let go
    assert await _priority(batch) == 3


async def test_a_cancel_that_arrives_at_the_commit_leaves_no_connection_out(
    batch: Ledger,
) -> None:
    async def work(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 7)
        current = asyncio.current_task()
        assert current is not None
        # Delivered at the next await, which is the commit (or, on PostgreSQL, its trip).
        asyncio.get_running_loop().call_soon(current.cancel)

    with pytest.raises(asyncio.CancelledError):
        await batch.runner.run(work)
    assert _checked_out(batch) == 0
    assert await _priority(batch) in (0, 7)  # the commit may have reached the database

    async def after(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 3)

    await batch.runner.run(after)
    assert await _priority(batch) == 3


async def test_a_commit_the_database_refuses_is_raised_and_rolled_back(
    batch: Ledger,
) -> None:
    dialect = batch.runner.engine.dialect.name

    async def work(conn: AsyncConnection, _now: Any) -> None:
        await _set_priority(conn, 7)
        # A foreign key checked at commit, not at the statement: the COMMIT fails.
        if dialect == "sqlite":
            await conn.execute(text("PRAGMA defer_foreign_keys = ON"))
        else:
            await conn.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        await conn.execute(
            text(
                "INSERT INTO events (batch_id, document_id, kind, created_at)"
                " VALUES ('no such batch', NULL, 'x', CURRENT_TIMESTAMP)"
            )
        )

    with pytest.raises(DBAPIError):
        await batch.runner.run(work, retries=1)
    assert _checked_out(batch) == 0
    assert await _priority(batch) == 0
