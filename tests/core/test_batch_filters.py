"""The core's batch listing by status, on SQLite and PostgreSQL: every filter word of
``BatchFilter`` lists exactly the batches showing that status, and ``active`` never a
finished one."""

from __future__ import annotations

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from ledger.states import BatchFilter, BatchStatus


async def test_each_filter_lists_its_batches(ledger: Ledger) -> None:
    for name in ("pending", "running", "paused", "complete", "cancelled"):
        await ledger.queue.submit(BatchSpec(id=name, processor="noop"), [SourceSpec(f"/{name}/a")])
    worker = await ledger.workers.register(concurrency=2)
    (finishing,) = await ledger.queue.claim(worker, 1, batch_ids=["complete"])
    await ledger.queue.complete(worker, [Outcome.done(finishing, {})])
    assert len(await ledger.queue.claim(worker, 1, batch_ids=["running"])) == 1
    await ledger.control.pause("paused")
    await ledger.control.cancel("cancelled")

    async def listed(word: BatchFilter) -> set[str]:
        state, status = word.as_query()
        return {b.id for b in (await ledger.reads.batches(state=state, status=status)).items}

    for word in BatchFilter:
        expected = {"pending", "running"} if word is BatchFilter.ACTIVE else {word.value}
        assert await listed(word) == expected, word


async def test_an_empty_batch_is_complete_in_the_filter_and_the_record(ledger: Ledger) -> None:
    """One answer everywhere: the SQL filter, the record's status word (CLI, API, dashboard)."""
    await ledger.queue.submit(BatchSpec(id="empty", processor="noop"), [])
    await ledger.queue.submit(BatchSpec(id="full", processor="noop"), [SourceSpec("/full/a")])
    batch = await ledger.reads.batch("empty")
    assert (batch.total, batch.status) == (0, BatchStatus.COMPLETE)
    assert (await ledger.reads.batch("full")).status == BatchStatus.PENDING
    for word in BatchFilter:
        state, status = word.as_query()
        listed = {b.id for b in (await ledger.reads.batches(state=state, status=status)).items}
        assert ("empty" in listed) == (word is BatchFilter.COMPLETE), word


async def test_a_paused_empty_batch_stays_paused(ledger: Ledger) -> None:
    """A batch created empty (uploads to come) and paused shows the pause, not 'complete'."""
    await ledger.queue.submit(BatchSpec(id="held", processor="noop"), [])
    await ledger.control.pause("held")
    batch = await ledger.reads.batch("held")
    assert (batch.total, batch.status) == (0, BatchStatus.PAUSED)
    for word in BatchFilter:
        state, status = word.as_query()
        listed = {b.id for b in (await ledger.reads.batches(state=state, status=status)).items}
        assert ("held" in listed) == (word is BatchFilter.PAUSED), word
