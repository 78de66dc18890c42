"""The dashboard's throughput read: attempts per minute, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ledger.app import Ledger
from ledger.errors import NotFound
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from ledger.queue import throughput as throughput_reads
from tests.conftest import FakeClock


def _error(retryable: bool) -> ErrorInfo:
    return ErrorInfo(code="boom", message="boom happened", retryable=retryable)


async def _finish(ledger: Ledger, worker: str, how: list[str]) -> None:
    claimed = await ledger.queue.claim(worker, len(how), batch_ids=["b"])
    assert len(claimed) == len(how)
    outcomes = []
    for doc, kind in zip(claimed, how, strict=True):
        if kind == "done":
            outcomes.append(Outcome.done(doc, {}))
        elif kind == "skipped":
            outcomes.append(Outcome.skipped(doc, {"reason": "nothing to do"}))
        else:
            outcomes.append(Outcome.failed(doc, _error(retryable=kind == "retry")))
    result = await ledger.queue.complete(worker, outcomes)
    assert not result.lost


async def test_attempts_are_counted_in_the_minute_they_ended(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop", owner="acme"),
        [SourceSpec(f"/d/{i}") for i in range(10)],
    )
    worker = await ledger.workers.register(concurrency=4)
    start = clock.now.replace(second=0, microsecond=0)
    clock.now = start + timedelta(seconds=10)
    await _finish(ledger, worker, ["done", "done", "failed"])
    clock.advance(40)  # same minute, 50 s in
    await _finish(ledger, worker, ["skipped", "retry"])
    clock.now = start + timedelta(minutes=2, seconds=5)  # a quiet minute in between
    await _finish(ledger, worker, ["done"])

    result = await ledger.reads.throughput("b", owner="acme", minutes=5)
    assert result.batch_id == "b" and not result.truncated
    # Work is left and the batch is active: the window ends at the current minute.
    assert result.until == start + timedelta(minutes=2)
    minutes = {m.minute: m for m in result.minutes}
    assert [m.minute for m in result.minutes] == [
        start + timedelta(minutes=i) for i in range(-2, 3)
    ]
    first = minutes[start]
    assert (first.done, first.failed, first.skipped, first.retried) == (2, 1, 1, 1)
    assert first.finished == 4
    assert minutes[start + timedelta(minutes=1)].finished == 0
    assert minutes[start + timedelta(minutes=2)].done == 1
    assert sum(m.finished for m in result.minutes) == 5

    # Another tenant cannot read it.
    with pytest.raises(NotFound):
        await ledger.reads.throughput("b", owner="globex")


async def test_a_finished_batch_is_shown_where_it_ran(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [SourceSpec("/d/1")])
    worker = await ledger.workers.register(concurrency=1)
    ran = clock.now.replace(second=0, microsecond=0)
    await _finish(ledger, worker, ["done"])
    clock.advance(3 * 86400)  # read three days later
    result = await ledger.reads.throughput("b", minutes=60)
    assert result.until == ran
    assert result.minutes[-1].done == 1 and len(result.minutes) == 60


async def test_the_read_is_bounded_and_says_when_it_undercounts(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(6)]
    )
    worker = await ledger.workers.register(concurrency=6)
    await _finish(ledger, worker, ["done"] * 6)

    async def read(sample: int) -> object:
        async def work(conn, now):  # type: ignore[no-untyped-def]
            return await throughput_reads.throughput(
                conn, "b", owner=None, now=now, minutes=10, sample=sample
            )

        return await ledger.runner.run(work, write=False)

    small = await read(4)
    assert small.truncated and sum(m.done for m in small.minutes) == 4  # type: ignore[attr-defined]
    whole = await read(100)
    assert not whole.truncated and sum(m.done for m in whole.minutes) == 6  # type: ignore[attr-defined]
