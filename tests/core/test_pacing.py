"""A wave of documents that finishes at once is refilled in halves when documents outlast
the refills (so the halves then finish apart), never when they do not; either way nothing
is leased ahead, everything finished is recorded before new work starts, and every
document is done exactly once."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.model import ClaimedDocument, CompleteResult, Outcome
from ledger.processors.base import Document, Done
from ledger.states import DocumentStatus
from ledger.worker.pacing import STAGGER_RATIO, Pacing
from ledger.worker.runtime import Worker
from tests.conftest import sql
from tests.core.test_worker import Sleeper, open_ledger, registry_with, submit


def test_a_wave_is_claimed_whole_until_both_durations_are_known() -> None:
    pacing = Pacing()
    assert pacing.first_claim(50) == 50
    pacing.processed(0.05)
    assert pacing.first_claim(50) == 50
    pacing.refilled(0.004)
    assert pacing.first_claim(50) == 25
    assert pacing.first_claim(7) == 4  # the larger half first
    assert pacing.first_claim(1) == 1


def test_a_wave_is_split_only_when_documents_outlast_two_refills() -> None:
    pacing = Pacing()
    pacing.refilled(0.01)
    pacing.processed(STAGGER_RATIO * 0.01 * 0.9)
    assert pacing.first_claim(16) == 16
    for _ in range(20):  # the averages follow what the worker sees now
        pacing.processed(STAGGER_RATIO * 0.01 * 1.5)
    assert pacing.first_claim(16) == 8
    for _ in range(20):
        pacing.refilled(0.05)
    assert pacing.first_claim(16) == 16


class _Recorder:
    """What the worker asked of the queue: the outcomes it recorded, with how many new
    documents the same transaction was to lease, and the claims made alone."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.records: list[tuple[int, int, int]] = []  # (outcomes, claim asked, in flight)
        self.claims: list[tuple[int, int]] = []  # (asked, in flight)
        queue = worker.ledger.queue
        self._complete, self._claim = queue.complete, queue.claim
        queue.complete = self.complete  # type: ignore[method-assign,assignment]
        queue.claim = self.claim  # type: ignore[method-assign]

    async def complete(
        self, worker_id: str, outcomes: list[Outcome], **kwargs: Any
    ) -> CompleteResult:
        claim = kwargs.get("claim", 0)
        self.records.append((len(outcomes), claim, len(self.worker._tasks)))
        return await self._complete(worker_id, outcomes, **kwargs)

    async def claim(self, worker_id: str, limit: int, **kwargs: Any) -> list[ClaimedDocument]:
        self.claims.append((limit, len(self.worker._tasks)))
        return await self._claim(worker_id, limit, **kwargs)


@pytest.mark.parametrize("concurrency", [10, 7])
async def test_a_wave_of_slow_documents_is_refilled_in_halves(
    db_url: str, sync_url: str, concurrency: int
) -> None:
    slow = Sleeper(0.2)
    total = concurrency * 6
    async with await open_ledger(db_url, prefetch=0) as ledger:
        await submit(ledger, total, "slow")
        worker = Worker(ledger, concurrency=concurrency, registry=registry_with("slow", slow))
        seen = _Recorder(worker)
        stats = await worker.run(burst=True)
        batch = await ledger.reads.batch("b")
    half = (concurrency + 1) // 2
    # The first wave finished at once, with nothing else in flight: it was recorded whole,
    # with a claim of the larger half only, and the other half was claimed on its own
    # while the first half ran.
    splits = [record for record in seen.records if record[1] == half]
    assert splits, seen.records
    assert splits[0] == (concurrency, half, 0)
    assert (concurrency - half, half) in seen.claims
    # From then on the halves finish apart: slots are refilled by claims alone, made while
    # the other half is in flight.
    assert sum(1 for asked, running in seen.claims if running > 0) >= 3
    # Never more documents leased than slots, nothing done twice, nothing lost.
    assert slow.peak <= concurrency
    assert stats.done == total and batch.counts[DocumentStatus.DONE] == total and batch.complete
    attempts = sql(sync_url, "SELECT count(*) AS n, max(attempt) AS most FROM attempts")[0]
    assert (attempts.n, attempts.most) == (total, 1)


async def test_documents_quicker_than_a_refill_are_never_split(db_url: str) -> None:
    async def quick(doc: Document) -> Done:
        return Done({"id": doc.id})

    async with await open_ledger(db_url, prefetch=0) as ledger:
        await submit(ledger, 400, "quick")
        worker = Worker(ledger, concurrency=16, registry=registry_with("quick", quick))
        seen = _Recorder(worker)
        stats = await worker.run(burst=True)
    assert stats.done == 400
    waves = [r for r in seen.records if r[1] > 0]
    assert waves and all(claim == 16 for _, claim, _ in waves)
