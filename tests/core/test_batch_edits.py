"""Changing a submitted batch's name, priority and attempt budget, on both backends."""

from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.errors import InvalidInput, NotFound
from ledger.model import BatchSpec, SourceSpec
from ledger.queue.batch_edits import BatchChanges


async def test_changes_apply_to_the_next_claim_with_an_event(ledger: Ledger) -> None:
    await ledger.queue.submit(
        BatchSpec(id="low", processor="noop", owner="acme"), [SourceSpec("/a")]
    )
    await ledger.queue.submit(
        BatchSpec(id="high", processor="noop", priority=5), [SourceSpec("/b")]
    )
    changed = await ledger.control.update_batch(
        "low", BatchChanges(name="urgent", priority=10, max_attempts=7), owner="acme"
    )
    assert (changed.name, changed.priority, changed.max_attempts) == ("urgent", 10, 7)
    worker = await ledger.workers.register(concurrency=1)
    first = await ledger.queue.claim(worker, 1)
    assert [d.batch_id for d in first] == ["low"]  # now above "high"
    events = [e for e in await ledger.reads.events("low") if e.kind == "batch_updated"]
    assert [e.data for e in events] == [{"name": "urgent", "priority": 10, "max_attempts": 7}]

    same = await ledger.control.update_batch("low", BatchChanges(priority=10), owner="acme")
    assert same.name == "urgent" and same.max_attempts == 7  # left-out fields kept
    assert len([e for e in await ledger.reads.events("low") if e.kind == "batch_updated"]) == 1


async def test_other_tenants_and_bad_values_are_refused(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop", owner="acme"), [])
    with pytest.raises(NotFound):
        await ledger.control.update_batch("b", BatchChanges(priority=1), owner="globex")
    with pytest.raises(NotFound):
        await ledger.control.update_batch("missing", BatchChanges(priority=1))
    for bad in (BatchChanges(max_attempts=0), BatchChanges(priority=10**7)):
        with pytest.raises(InvalidInput):
            await ledger.control.update_batch("b", bad, owner="acme")
    kept = await ledger.reads.batch("b", owner="acme")
    assert kept.priority == 0 and kept.max_attempts >= 1
