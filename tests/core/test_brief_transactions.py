"""Brief transactions on SQLite: their statements (and, with synchronous=NORMAL, their
COMMIT) run on the event loop's thread, and taking the write lock from another process still
waits off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from tests.conftest import settings_for

Traced = list[tuple[int, str]]


@pytest.fixture(params=["NORMAL"])
async def traced_ledger(
    sqlite_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Ledger, Traced]]:
    """A ledger whose SQLite connections report every statement with the thread it ran on
    (``synchronous`` as the test's parameter says, NORMAL unless it says otherwise)."""
    settings = settings_for(sqlite_url, busy_timeout_ms=30_000, sqlite_synchronous=request.param)
    ledger = await Ledger.open(settings)
    traced: Traced = []

    def trace(dbapi_connection: Any, _record: Any) -> None:
        raw: sqlite3.Connection = dbapi_connection._connection._conn
        raw.set_trace_callback(lambda sql: traced.append((threading.get_ident(), sql)))

    engine = ledger.runner.engine
    event.listen(engine.sync_engine, "connect", trace)
    await engine.dispose()  # the connections opened so far are not traced: start afresh
    try:
        yield ledger, traced
    finally:
        await ledger.close()


async def _submit(ledger: Ledger, n: int) -> None:
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop"), [SourceSpec(f"/doc/{i}") for i in range(n)]
    )


@pytest.mark.parametrize("traced_ledger", ["NORMAL", "FULL"], indirect=True)
async def test_claims_and_finishes_run_their_statements_on_the_loop(
    traced_ledger: tuple[Ledger, Traced],
) -> None:
    ledger, traced = traced_ledger
    synchronous = ledger.settings.sqlite_synchronous
    loop_thread = threading.get_ident()
    await _submit(ledger, 20)
    submitted = list(traced)
    assert submitted and all(thread != loop_thread for thread, _ in submitted)

    worker = await ledger.workers.register(concurrency=10, processors=["noop"])
    traced.clear()
    claimed = await ledger.queue.claim(worker, 10, processors=["noop"])
    result = await ledger.queue.complete(
        worker, [Outcome.done(d, {}) for d in claimed], claim=10, processors=["noop"]
    )
    await ledger.queue.heartbeat(worker, [(d.id, d.lease_token) for d in result.claimed or []])
    assert len(claimed) == 10 and len(result.recorded) == 10 and len(result.claimed or []) == 10

    statements = [(thread, sql.split()[0].upper()) for thread, sql in traced]
    commits = [thread for thread, verb in statements if verb == "COMMIT"]
    others = [thread for thread, verb in statements if verb != "COMMIT"]
    assert len(commits) == 3 and len(others) >= 8
    assert all(thread == loop_thread for thread in others)
    if synchronous == "NORMAL":
        # Checkpoints run on a thread of their own: a commit only appends to the log.
        assert all(thread == loop_thread for thread in commits)
    else:
        # Each commit syncs the log (and SQLite checkpoints in it): off the loop.
        assert all(thread != loop_thread for thread in commits)


async def test_a_brief_transaction_waits_for_another_writer_off_the_loop(
    traced_ledger: tuple[Ledger, Traced], sqlite_url: str
) -> None:
    ledger, traced = traced_ledger
    await _submit(ledger, 5)
    worker = await ledger.workers.register(concurrency=5, processors=["noop"])
    other = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        claim = asyncio.create_task(ledger.queue.claim(worker, 5, processors=["noop"]))
        # The loop is free while the claim waits: this sleep returns with the claim pending
        # (were the claim waiting on the loop's thread, it would end first, one way or another).
        await asyncio.sleep(0.3)
        assert not claim.done()
        other.execute("COMMIT")
        claimed = await claim
    finally:
        other.close()
    assert len(claimed) == 5
    # The BEGIN that waited went to the driver's thread, with the statement it came with.
    waited = [thread for thread, sql in traced if sql.upper().startswith("BEGIN IMMEDIATE")]
    assert waited and waited[-1] != threading.get_ident()
