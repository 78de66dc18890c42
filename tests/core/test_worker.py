"""The worker runtime on a real database: concurrency, failures, stops, lost leases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from ledger.app import Ledger
from ledger.errors import PermanentError
from ledger.model import BatchSpec, SourceSpec
from ledger.processors.base import (
    Document,
    Done,
    Processor,
    ProcessorContext,
    Skip,
)
from ledger.processors.registry import ProcessorRegistry
from ledger.states import AttemptOutcome, DocumentStatus
from ledger.worker.runtime import Worker
from tests.conftest import settings_for, sql

S = DocumentStatus


def registry_with(name: str, fn: Callable[[Document], Any]) -> ProcessorRegistry:
    def factory(context: ProcessorContext, options: dict[str, Any]) -> Processor:
        return fn  # type: ignore[return-value]

    registry = ProcessorRegistry()
    registry._factories[name] = factory
    return registry


async def open_ledger(url: str, **overrides: Any) -> Ledger:
    values: dict[str, Any] = {"backoff_base_seconds": 0.0, "commit_interval_seconds": 0.005}
    values.update(overrides)
    return await Ledger.open(settings_for(url, **values))


async def submit(ledger: Ledger, n: int, processor: str, **options: Any) -> str:
    spec = BatchSpec(id="b", processor=processor, options=options)
    await ledger.queue.submit(spec, [SourceSpec(f"/doc/{i}") for i in range(n)])
    return "b"


async def test_burst_processes_everything_with_the_noop_processor(db_url: str) -> None:
    async with await open_ledger(db_url) as ledger:
        await submit(ledger, 500, "noop")
        stats = await Worker(ledger, concurrency=50).run(burst=True)
        batch = await ledger.reads.batch("b")
    assert stats.done == 500 and stats.claimed == 500
    assert batch.counts[S.DONE] == 500 and batch.complete


class Sleeper:
    """A processor that sleeps, counting how many of its calls run at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running = 0
        self.peak = 0

    async def __call__(self, doc: Document) -> Done:
        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(self.seconds)
        self.running -= 1
        return Done({"id": doc.id})


async def test_documents_really_run_concurrently(db_url: str) -> None:
    slow = Sleeper(0.05)
    async with await open_ledger(db_url) as ledger:
        await submit(ledger, 60, "slow")
        stats = await Worker(ledger, concurrency=20, registry=registry_with("slow", slow)).run(
            burst=True
        )
    assert stats.done == 60
    assert slow.peak == 20


async def test_a_failing_document_never_stops_the_worker(db_url: str, sync_url: str) -> None:
    async def picky(doc: Document) -> Done | Skip:
        number = int(doc.source.rsplit("/", 1)[1])
        if number % 10 == 3:
            raise ValueError(f"cannot handle {number}")
        if number % 10 == 5:
            raise PermanentError("corrupt", "broken bytes")
        if number % 10 == 7:
            return Skip("nothing to do")
        if number % 10 == 9:
            return "not a dict"  # type: ignore[return-value]
        return Done({"n": number})

    async with await open_ledger(db_url, max_attempts=2) as ledger:
        await submit(ledger, 50, "picky")
        stats = await Worker(ledger, concurrency=8, registry=registry_with("picky", picky)).run(
            burst=True
        )
        groups = {g.code: g.count for g in await ledger.reads.failures("b")}
        batch = await ledger.reads.batch("b")
    assert batch.counts[S.DONE] == 30 and batch.counts[S.SKIPPED] == 5
    assert groups == {"exception": 10, "corrupt": 5}
    assert stats.retried == 10 and stats.failed == 15  # unexpected exceptions get a retry
    messages = sql(sync_url, "SELECT error_message FROM documents WHERE error_code = 'exception'")
    assert any("ValueError: cannot handle 3" in m for (m,) in messages)
    assert any("TypeError" in m for (m,) in messages)  # the bad return type


async def test_graceful_stop_lets_in_flight_documents_finish(db_url: str) -> None:
    started = asyncio.Event()

    async def slow(doc: Document) -> Done:
        started.set()
        await asyncio.sleep(0.3)
        return Done({})

    async with await open_ledger(db_url) as ledger:
        await submit(ledger, 20, "slow")
        worker = Worker(ledger, concurrency=4, registry=registry_with("slow", slow))
        task = asyncio.create_task(worker.run())
        await started.wait()
        worker.stop()
        stats = await task
        batch = await ledger.reads.batch("b")
    assert stats.done == 4 and stats.released == 0
    assert batch.counts[S.DONE] == 4 and batch.counts[S.PENDING] == 16
    assert batch.counts[S.RUNNING] == 0


async def test_documents_leased_ahead_go_back_unstarted_without_an_attempt(
    db_url: str, sync_url: str
) -> None:
    started = asyncio.Event()

    async def slow(doc: Document) -> Done:
        started.set()
        await asyncio.sleep(0.3)
        return Done({})

    async with await open_ledger(db_url, prefetch=2) as ledger:
        await submit(ledger, 20, "slow")
        worker = Worker(ledger, concurrency=4, registry=registry_with("slow", slow))
        task = asyncio.create_task(worker.run())
        await started.wait()
        await asyncio.sleep(0.05)  # the lease-ahead claim lands while the first four run
        worker.stop()
        stats = await asyncio.wait_for(task, timeout=10)
        batch = await ledger.reads.batch("b")
    assert stats.done == 4 and stats.released == 0
    assert stats.returned == 2 and stats.claimed == 6
    assert batch.counts[S.DONE] == 4 and batch.counts[S.PENDING] == 16
    # Nothing was attempted on the documents leased ahead: no attempt row, no attempt used.
    assert sql(sync_url, "SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("done", 4)]
    assert sql(sync_url, "SELECT max(attempts) FROM documents WHERE status = 'pending'") == [(0,)]


async def test_second_stop_gives_documents_back_without_using_an_attempt(
    db_url: str, sync_url: str
) -> None:
    started = asyncio.Event()

    async def stuck(doc: Document) -> Done:
        started.set()
        await asyncio.sleep(3600)
        return Done({})

    async with await open_ledger(db_url) as ledger:
        await submit(ledger, 3, "stuck")
        worker = Worker(ledger, concurrency=3, registry=registry_with("stuck", stuck))
        task = asyncio.create_task(worker.run())
        await started.wait()
        await asyncio.sleep(0.05)
        worker.stop()
        worker.stop()  # the impatient second Ctrl-C
        stats = await asyncio.wait_for(task, timeout=10)
        batch = await ledger.reads.batch("b")
    assert stats.released == 3
    assert batch.counts[S.PENDING] == 3
    rows = sql(sync_url, "SELECT attempts FROM documents")
    assert {r[0] for r in rows} == {0}
    outcomes = sql(sync_url, "SELECT outcome FROM attempts")
    assert [o for (o,) in outcomes] == [AttemptOutcome.RELEASED.value] * 3


async def test_a_lost_lease_stops_the_work_and_records_nothing(db_url: str, sync_url: str) -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(doc: Document) -> Done:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Done({})

    async with await open_ledger(db_url, lease_seconds=3.0, heartbeat_seconds=0.2) as ledger:
        await submit(ledger, 1, "slow")
        worker = Worker(ledger, concurrency=1, registry=registry_with("slow", slow))
        task = asyncio.create_task(worker.run())
        await started.wait()
        # Another worker took the document over (as after this one's lease had expired).
        sql(sync_url, "UPDATE documents SET lease_token = 'someone-else'")
        await asyncio.wait_for(cancelled.wait(), timeout=5)
        worker.stop()
        stats = await asyncio.wait_for(task, timeout=5)
    assert stats.lost == 1 and stats.done == 0
    assert sql(sync_url, "SELECT status, lease_token FROM documents")[0] == (
        "running",
        "someone-else",
    )
    assert sql(sync_url, "SELECT count(*) FROM attempts")[0][0] == 0


async def test_until_complete_waits_out_retry_backoff(db_url: str) -> None:
    tries: dict[int, int] = {}

    async def flaky(doc: Document) -> Done:
        tries[doc.id] = tries.get(doc.id, 0) + 1
        if tries[doc.id] == 1:
            from ledger.errors import RetryableError

            raise RetryableError("flaky", "first try fails", systemic=False)
        return Done({})

    async with await open_ledger(db_url, backoff_base_seconds=0.3) as ledger:
        await submit(ledger, 5, "flaky")
        worker = Worker(ledger, batch_ids=["b"], registry=registry_with("flaky", flaky))
        stats = await asyncio.wait_for(worker.run(until_complete=True), timeout=20)
        batch = await ledger.reads.batch("b")
    assert stats.retried == 5 and stats.done == 5
    assert batch.counts[S.DONE] == 5


@pytest.mark.parametrize("processor", ["sleep"])
async def test_builtin_sleep_processor_with_failures(db_url: str, processor: str) -> None:
    async with await open_ledger(db_url, max_attempts=5) as ledger:
        await submit(ledger, 100, processor, seconds=0.001, failure_rate=0.3, seed=1)
        stats = await Worker(ledger, concurrency=20).run(burst=True)
        batch = await ledger.reads.batch("b")
    assert stats.retried > 10
    assert batch.counts[S.DONE] + batch.counts[S.FAILED] == 100


def _pause(seconds: float) -> None:
    """A pool task (a module-level function: the child imports it)."""
    time.sleep(seconds)


async def test_freed_slots_gather_into_claims_while_the_pool_is_busy(db_url: str) -> None:
    # Documents queue for one pool process, as a parse-bound ingest does: a slot that frees
    # while others wait for the pool waits for a quarter of the slots instead of claiming
    # one document per transaction, and nothing is leased that does not start at once.
    claims = 0

    def count_claims(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal claims
        claims += statement.lstrip().startswith("WITH due AS")

    def factory(context: ProcessorContext, options: dict[str, Any]) -> Processor:
        async def pooled(doc: Document) -> Done:
            assert context.pool is not None
            await context.pool.run(_pause, 0.01 + (doc.id % 4) * 0.002)
            return Done({})

        return pooled

    registry = ProcessorRegistry()
    registry._factories["pooled"] = factory
    async with await open_ledger(db_url, process_workers=1) as ledger:
        await submit(ledger, 48, "pooled")
        event.listen(ledger.runner.engine.sync_engine, "before_cursor_execute", count_claims)
        stats = await Worker(ledger, concurrency=12, registry=registry).run(burst=True)
        batch = await ledger.reads.batch("b")
    assert stats.done == 48 and stats.claimed == 48 and stats.returned == 0
    assert batch.counts[S.DONE] == 48
    assert claims <= 48 // 2, claims  # one claim per freed slot made 37
