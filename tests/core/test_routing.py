"""Routing by capability and worker liveness, on both backends.

A worker claims only batches whose processor it declared; a batch no live worker can run
waits and says so; a worker's state is derived from its heartbeat when read.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from ledger.processors.registry import ProcessorRegistry
from ledger.states import DocumentStatus, WorkerState
from ledger.wording import waiting_note
from ledger.worker.runtime import Worker
from tests.conftest import FakeClock, sql


def sources(n: int, prefix: str = "/d") -> list[SourceSpec]:
    return [SourceSpec(f"{prefix}/{i}") for i in range(n)]


async def test_a_worker_claims_only_batches_it_can_run(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="custom", processor="elsewhere:process"), sources(3))
    await ledger.queue.submit(BatchSpec(id="plain", processor="noop"), sources(2))
    server = await ledger.workers.register(concurrency=4, processors=["noop", "sleep"])
    taken = await ledger.queue.claim(server, 10, processors=["noop", "sleep"])
    assert sorted(d.batch_id for d in taken) == ["plain", "plain"]
    # Nothing more for it, however often it asks: the custom batch is not its to take.
    assert await ledger.queue.claim(server, 10, processors=["noop", "sleep"]) == []
    custom = await ledger.reads.batch("custom")
    assert custom.counts[DocumentStatus.PENDING] == 3 and custom.counts[DocumentStatus.RUNNING] == 0

    able = await ledger.workers.register(concurrency=4, processors=["elsewhere:process"])
    got = await ledger.queue.claim(able, 10, processors=["elsewhere:process"])
    assert sorted(d.source for d in got) == ["/d/0", "/d/1", "/d/2"]
    assert {d.batch_id for d in got} == {"custom"}


async def test_an_empty_set_claims_nothing(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(2))
    worker = await ledger.workers.register(concurrency=1, processors=[])
    assert await ledger.queue.claim(worker, 5, processors=[]) == []
    assert len(await ledger.queue.claim(worker, 5, processors=["noop"])) == 2


async def test_a_batch_nobody_can_run_waits_and_says_so(
    ledger: Ledger, clock: FakeClock, sync_url: str
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="boom:process"), sources(2))
    # No worker at all: it waits for one that can run it.
    assert (await ledger.reads.progress("b")).waiting_for_processor == "boom:process"
    other = await ledger.workers.register(concurrency=1, processors=["noop"])
    assert (await ledger.reads.progress("b")).waiting_for_processor == "boom:process"
    # A live worker that can run it: no longer waiting.
    able = await ledger.workers.register(concurrency=1, processors=["boom:process", "noop"])
    assert (await ledger.reads.progress("b")).waiting_for_processor is None
    assert await ledger.workers.others_able("boom:process", exclude=able) == 0
    assert await ledger.workers.others_able("noop", exclude=able) == 1
    # That worker goes silent past the lease time: it is lost, and the batch waits again.
    clock.advance(ledger.settings.lease_seconds + 1)
    await ledger.queue.heartbeat(other, [])
    assert (await ledger.reads.progress("b")).waiting_for_processor == "boom:process"
    # Waiting is not failing: nothing was attempted.
    assert sql(sync_url, "SELECT status, attempts FROM documents ORDER BY id") == [
        ("pending", 0),
        ("pending", 0),
    ]
    assert waiting_note("boom:process") == "waiting: no worker can run processor 'boom:process'"


async def test_a_finished_or_paused_batch_waits_for_nobody(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="empty", processor="boom:process"), [])
    assert (await ledger.reads.progress("empty")).waiting_for_processor is None
    await ledger.queue.submit(BatchSpec(id="held", processor="boom:process"), sources(1))
    await ledger.control.pause("held")
    assert (await ledger.reads.progress("held")).waiting_for_processor is None


async def test_worker_state_is_derived_from_heartbeat_and_stop(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(3))
    first = await ledger.workers.register(concurrency=2, processors=["noop"])
    clock.advance(1)
    second = await ledger.workers.register(concurrency=8, processors=["noop", "sleep"])
    clock.advance(1)
    third = await ledger.workers.register(concurrency=1, processors=[])
    held = await ledger.queue.claim(second, 2, processors=["noop"])
    await ledger.queue.complete(second, [Outcome.done(held[0], {})])
    await ledger.queue.heartbeat(second, [(held[1].id, held[1].lease_token)], finished=1)
    await ledger.workers.stopped(third, finished=0)

    page = await ledger.workers.page()
    assert [w.id for w in page.items] == [third, second, first]  # newest first
    by_id = {w.id: w for w in page.items}
    assert {w.id: w.state for w in page.items} == {
        first: WorkerState.ALIVE,
        second: WorkerState.ALIVE,
        third: WorkerState.STOPPED,
    }
    assert by_id[second].processors == ["noop", "sleep"]
    assert (by_id[second].in_flight, by_id[second].finished) == (1, 1)
    assert by_id[second].concurrency == 8
    assert (by_id[first].in_flight, by_id[first].finished) == (0, 0)

    # Past the lease time without a heartbeat: lost. A heartbeat brings it back.
    clock.advance(ledger.settings.lease_seconds + 1)
    await ledger.queue.heartbeat(second, [])
    states = {w.id: w.state for w in (await ledger.workers.page()).items}
    assert states == {
        first: WorkerState.LOST,
        second: WorkerState.ALIVE,
        third: WorkerState.STOPPED,
    }
    assert await ledger.workers.counts() == {
        WorkerState.ALIVE: 1,
        WorkerState.LOST: 1,
        WorkerState.STOPPED: 1,
    }
    lost = await ledger.workers.page(state=WorkerState.LOST)
    assert [w.id for w in lost.items] == [first]


async def test_workers_are_keyset_paged(ledger: Ledger, clock: FakeClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(await ledger.workers.register(concurrency=1))
        clock.advance(1)
    seen: list[str] = []
    cursor = None
    while True:
        page = await ledger.workers.page(cursor=cursor, limit=2)
        seen += [w.id for w in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_a_worker_declares_what_imports_and_leaves_out_what_does_not(
    ledger: Ledger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "routing_ok_mod.py").write_text("def process(doc):\n    return {'ok': True}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ProcessorRegistry(
        allowed=["routing_ok_mod:process", "gone=routing_missing_mod:process"]
    )
    await ledger.queue.submit(BatchSpec(id="ok", processor="routing_ok_mod:process"), sources(2))
    await ledger.queue.submit(BatchSpec(id="gone", processor="gone"), sources(2))
    worker = Worker(ledger, concurrency=2, registry=registry)
    with caplog.at_level(logging.WARNING):
        stats = await worker.run(burst=True)
    assert "routing_ok_mod:process" in worker.processors and "noop" in worker.processors
    assert "gone" not in worker.processors
    assert any("gone" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
    assert stats.done == 2
    assert (await ledger.reads.batch("ok")).complete
    gone = await ledger.reads.batch("gone")
    assert gone.counts[DocumentStatus.PENDING] == 2  # waited, never failed
    (row,) = (await ledger.workers.page()).items
    assert row.processors == worker.processors
    assert row.state is WorkerState.STOPPED and row.finished == 2
