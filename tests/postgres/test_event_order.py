"""The event log in the order PostgreSQL makes it visible, not in sequence order.

Two transactions draw event ids before they commit, so id 2 can become visible while id 1
is still to come. A reader that resumed "after id 2" used to lose id 1 for good; these tests
make that interleaving happen with two real connections and check that nothing is skipped,
that nothing unsettled is sent early, and that a live stream does not end before the last
held-back event is out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import psycopg2  # type: ignore[import-untyped]  # a plain driver: two raw transactions
import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from tests.conftest import POSTGRES_URL, FakeClock, settings_for

pytestmark = pytest.mark.postgres
T = TypeVar("T")

INSERT = "INSERT INTO events (batch_id, kind, created_at) VALUES ('b', %s, now()) RETURNING id"


@pytest.fixture
async def ledger(pg_url: str, clock: FakeClock) -> Any:
    led = await Ledger.open(settings_for(pg_url), clock=clock)
    await led.queue.submit(BatchSpec(id="b", processor="noop"), [])
    try:
        yield led
    finally:
        await led.close()


@pytest.fixture
def connections(pg_sync_url: str) -> Iterator[tuple[Any, Any]]:
    dsn = pg_sync_url.replace("postgresql+psycopg2://", "postgresql://")
    first, second = psycopg2.connect(dsn), psycopg2.connect(dsn)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def _begin_with_xid(conn: Any) -> None:
    """Open a transaction and give it its transaction id now (ids order by this moment)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_xact_id()")


def _insert(conn: Any, kind: str) -> int:
    with conn.cursor() as cur:
        cur.execute(INSERT, (kind,))
        row = cur.fetchone()
        assert row is not None
        return int(row[0])


async def _kinds(ledger: Ledger, after_id: int) -> list[str]:
    return [e.kind for e in await ledger.reads.events("b", after_id=after_id)]


async def _eventually(read: Callable[[], Awaitable[T]], expected: T) -> None:
    """The log settles once every older transaction on the server has ended; another
    session's transaction may hold it for a moment, so wait (generously) for the answer."""
    deadline = time.monotonic() + 60
    while (got := await read()) != expected:
        assert time.monotonic() < deadline, f"still {got!r}, expected {expected!r}"
        await asyncio.sleep(0.05)


async def _last_id(ledger: Ledger) -> int:
    """Where the log stands before a test writes, once it has settled."""
    deadline = time.monotonic() + 60
    while True:
        seen = await ledger.reads.events("b", limit=10_000)
        last = seen[-1].id if seen else 0
        if not await ledger.reads.has_events_after("b", after_id=last):
            return last
        assert time.monotonic() < deadline, "the event log never settled"
        await asyncio.sleep(0.05)


async def test_an_id_committed_after_a_higher_one_is_not_skipped(
    ledger: Ledger, connections: tuple[Any, Any]
) -> None:
    older, younger = connections
    start = await _last_id(ledger)
    _begin_with_xid(older)
    _begin_with_xid(younger)
    low = _insert(younger, "from_younger")  # the smaller id, in the transaction still open
    high = _insert(older, "from_older")
    assert low < high
    older.commit()

    await _eventually(lambda: _kinds(ledger, after_id=start), ["from_older"])
    younger.commit()
    # Resuming after the highest id seen so far still delivers the lower one.
    await _eventually(lambda: _kinds(ledger, after_id=high), ["from_younger"])
    assert await _kinds(ledger, after_id=low) == []
    assert await _kinds(ledger, after_id=start) == ["from_older", "from_younger"]


async def test_events_behind_a_running_transaction_are_held_back_then_sent(
    ledger: Ledger, connections: tuple[Any, Any]
) -> None:
    running, done = connections
    start = await _last_id(ledger)
    _begin_with_xid(running)
    _insert(done, "committed_early")
    done.commit()

    # Committed, but an older transaction may still add events before it: not settled yet.
    assert await ledger.reads.events("b", after_id=start) == []
    assert await ledger.reads.has_events_after("b", after_id=start)
    _insert(running, "committed_late")
    running.commit()
    await _eventually(lambda: _kinds(ledger, after_id=start), ["committed_late", "committed_early"])


async def test_a_stream_of_a_complete_batch_waits_for_held_back_events(
    ledger: Ledger, connections: tuple[Any, Any]
) -> None:
    from ledger.api.events import event_stream

    running, done = connections
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [SourceSpec("/b/a")])
    worker = await ledger.workers.register(concurrency=1)
    (claimed,) = await ledger.queue.claim(worker, 1)
    await ledger.queue.complete(worker, [Outcome.done(claimed, {})])
    assert (await ledger.reads.batch("b")).completed_at is not None
    start = await _last_id(ledger)
    _begin_with_xid(running)
    _insert(done, "committed_early")
    done.commit()

    stream = event_stream(ledger, "b", None, start, poll_seconds=0.01)
    seen: list[str | None] = []
    while seen.count("progress") < 3:  # three full rounds, the batch complete in each
        message = await anext(stream)
        seen.append(message.event)
    assert "end" not in seen and "committed_early" not in seen
    _insert(running, "committed_late")
    running.commit()
    async for message in stream:
        seen.append(message.event)
    events = [kind for kind in seen if kind not in (None, "progress")]
    assert events == ["committed_late", "committed_early", "end"]


async def test_a_transaction_in_another_database_does_not_hold_the_log_back(
    ledger: Ledger, connections: tuple[Any, Any]
) -> None:
    _, writer = connections
    start = await _last_id(ledger)
    elsewhere = psycopg2.connect(POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        _begin_with_xid(elsewhere)  # older than the event below, in another database
        _insert(writer, "written_here")
        writer.commit()
        await _eventually(lambda: _kinds(ledger, after_id=start), ["written_here"])
        with elsewhere.cursor() as cur:  # it was open all along
            cur.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
            assert cur.fetchone() == (True,)
    finally:
        elsewhere.close()
