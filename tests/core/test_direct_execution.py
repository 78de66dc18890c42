"""The hot statements sent straight to the SQLite driver (``ledger.db.direct``) send and
read exactly what SQLAlchemy's own execution does, and fail the way it fails."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import bindparam, event, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.db import direct
from ledger.db.models import documents
from ledger.model import BatchSpec, ClaimedDocument, ErrorInfo, Outcome, SourceSpec
from ledger.queue import claims, finish
from tests.conftest import FakeClock, settings_for

Sent = list[tuple[str, Any]]
Work = Callable[[AsyncConnection, datetime], Awaitable[Any]]


@pytest.fixture
async def sqlite_ledger(sqlite_url: str, clock: FakeClock) -> AsyncIterator[Ledger]:
    async with await Ledger.open(settings_for(sqlite_url), clock=clock) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(30)]
        )
        yield ledger


async def _both_ways(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, work: Work
) -> tuple[tuple[Sent, Any], tuple[Sent, Any]]:
    """``work`` run twice, each time rolled back: straight to the driver, then through
    SQLAlchemy; what each sent (statement, values) and what it returned. The rows each hot
    statement read come back the same both ways, column by column (names, types, values;
    the random lease tokens left out)."""
    sent: Sent = []
    read: list[list[dict[str, Any]]] = []
    straight_by_driver = 0

    def capture(_c: Any, _cur: Any, statement: str, params: Any, context: Any, _m: Any) -> None:
        nonlocal straight_by_driver
        sent.append((statement, params))
        straight_by_driver += context is None  # SQLAlchemy's own path has a context

    def keep(rows: list[dict[str, Any]]) -> None:
        read.append([{k: v for k, v in row.items() if k != "lease_token"} for row in rows])

    straight_execute = direct.execute

    async def straight_path(conn: AsyncConnection, statement: Any, params: Any) -> Any:
        result = await straight_execute(conn, statement, params)
        keep([row._asdict() for row in result.all()])
        return result

    async def sqlalchemy_path(conn: AsyncConnection, statement: Any, params: Any) -> Any:
        result = await conn.execute(statement, params)
        rows = result.all() if result.returns_rows else []
        keep([dict(row._mapping) for row in rows])
        return direct.Rows(list(rows), result.rowcount)

    engine = ledger.runner.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(direct, "execute", straight_path)
            straight = await ledger.runner.rolled_back(work)
        straight_sent, straight_read = list(sent), list(read)
        sent.clear()
        read.clear()
        # Most of what the straight run sent went to the driver directly.
        assert straight_by_driver >= len(straight_sent) // 2, (straight_by_driver, straight_sent)
        straight_by_driver = 0
        with monkeypatch.context() as patch:
            patch.setattr(direct, "execute", sqlalchemy_path)
            through = await ledger.runner.rolled_back(work)
        assert straight_by_driver == 0
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert straight_read == read and any(straight_read)
    return (straight_sent, straight), (list(sent), through)


def _without_tokens(docs: list[ClaimedDocument]) -> list[ClaimedDocument]:
    # The lease tokens are random (made by the database): everything else must match.
    return [msgspec.structs.replace(d, lease_token="") for d in docs]


async def _claim(ledger: Ledger, worker: str, conn: AsyncConnection, now: datetime) -> Any:
    return await claims.claim(
        conn,
        worker_id=worker,
        limit=7,
        now=now,
        lease_seconds=30,
        processors=["noop"],
        rng=random.Random(3),
        rescue_limit=100,
    )


async def test_a_claim_sends_and_reads_what_sqlalchemy_does(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    ledger = sqlite_ledger
    worker = await ledger.workers.register(concurrency=7, processors=["noop"])
    # One expired lease: the claim's first statement flags it, the rescue runs, and the
    # candidates are read again.
    await ledger.queue.claim(worker, 1, processors=["noop"])
    clock.advance(3600)

    (sent_a, got_a), (sent_b, got_b) = await _both_ways(
        ledger, monkeypatch, lambda conn, now: _claim(ledger, worker, conn, now)
    )
    assert len(got_a) == 7
    assert _without_tokens(got_a) == _without_tokens(got_b)
    assert sent_a == sent_b and len(sent_a) >= 4
    # The candidates were read twice: before the rescue and after it.
    assert sum(1 for statement, _ in sent_a if statement == sent_a[0][0]) == 2


async def test_a_finish_sends_and_reads_what_sqlalchemy_does(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = sqlite_ledger
    worker = await ledger.workers.register(concurrency=10, processors=["noop"])
    held = await ledger.queue.claim(worker, 10, processors=["noop"])
    flaky = ErrorInfo(code="flaky", message="try again", retryable=True)
    outcomes = [
        *(Outcome.done(d, {}) for d in held[:4]),
        *(Outcome.done(d, {"n": i}) for i, d in enumerate(held[4:6])),
        *(Outcome.failed(d, flaky) for d in held[6:9]),
        # A lease this worker no longer holds: fenced out.
        Outcome.done(msgspec.structs.replace(held[9], lease_token="0" * 32), {}),
    ]
    queue = ledger.queue

    async def work(conn: AsyncConnection, now: datetime) -> Any:
        return await finish.complete(
            conn,
            worker_id=worker,
            outcomes=outcomes,
            now=now,
            retry=queue.retry_policy,
            breaker=queue.breaker_policy,
            rng=random.Random(5),
        )

    (sent_a, got_a), (sent_b, got_b) = await _both_ways(ledger, monkeypatch, work)
    assert sorted(got_a.recorded) == sorted(d.id for d in held[:9])
    assert got_a.lost == [held[9].id]
    assert got_a == got_b
    assert sent_a == sent_b and len(sent_a) >= 6


# Built once, as the ledger's statements are (the compiled form is kept by statement).
_SET_STATUS = update(documents).values(status=bindparam("p_status"))


async def test_a_driver_error_is_sqlalchemys_error(sqlite_ledger: Ledger) -> None:
    raised = []
    for run in (direct.execute, lambda conn, st, params: conn.execute(st, params)):

        async def work(conn: AsyncConnection, now: datetime, run: Any = run) -> None:
            await run(conn, _SET_STATUS, {"p_status": "bogus"})  # the database refuses it

        with pytest.raises(IntegrityError, match="forbidden document status transition") as exc:
            await sqlite_ledger.runner.run(work)
        raised.append((type(exc.value.orig), str(exc.value)))
    assert raised[0] == raised[1]
    counts = (await sqlite_ledger.reads.batch("b")).counts
    assert sum(counts.values()) == 30  # nothing changed
