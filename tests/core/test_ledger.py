"""Submit, claim, heartbeat, complete, rescue and control, on both backends."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from sqlalchemy import event

from ledger.app import Ledger
from ledger.backoff import RetryPolicy
from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from ledger.states import AttemptOutcome, BatchState, DocumentStatus
from tests.conftest import FakeClock, sql

S = DocumentStatus


def sources(n: int, prefix: str = "/d") -> list[SourceSpec]:
    return [SourceSpec(f"{prefix}/{i}") for i in range(n)]


def retryable(code: str = "flaky", *, systemic: bool = False) -> ErrorInfo:
    return ErrorInfo(code=code, message=f"{code} happened", retryable=True, systemic=systemic)


async def test_submit_creates_batch_and_documents_in_one_go(ledger: Ledger) -> None:
    result = await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(5))
    assert result.created and result.added == 5 and result.known == 0
    assert result.batch.counts[S.PENDING] == 5 and result.batch.total == 5
    assert result.batch.state is BatchState.ACTIVE
    assert result.batch.max_attempts == 3


async def test_resubmit_is_idempotent_and_adds_only_new_sources(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(5))
    again = await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(7))
    assert not again.created and again.added == 2 and again.known == 5
    assert again.batch.total == 7


async def test_resubmit_with_other_settings_is_a_conflict(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(1))
    with pytest.raises(Conflict, match="processor"):
        await ledger.queue.submit(BatchSpec(id="b", processor="sleep"), sources(1))
    with pytest.raises(Conflict, match="not available"):
        await ledger.queue.submit(BatchSpec(id="b", processor="noop", owner="other"), sources(1))


async def test_generated_batch_ids_are_unique_and_bad_ids_rejected(ledger: Ledger) -> None:
    a = await ledger.queue.submit(BatchSpec(processor="noop"), [])
    b = await ledger.queue.submit(BatchSpec(processor="noop"), [])
    assert a.batch.id != b.batch.id
    with pytest.raises(InvalidInput):
        await ledger.queue.submit(BatchSpec(id="has space", processor="noop"), [])


async def test_claim_leases_documents_with_unique_tokens(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(10))
    worker = await ledger.workers.register(concurrency=4)
    claimed = await ledger.queue.claim(worker, 4)
    assert len(claimed) == 4
    assert len({d.lease_token for d in claimed}) == 4
    assert all(d.attempt == 1 and d.processor == "noop" for d in claimed)
    assert [d.source for d in claimed] == ["/d/0", "/d/1", "/d/2", "/d/3"]  # oldest first
    batch = await ledger.reads.batch("b")
    assert batch.counts[S.RUNNING] == 4 and batch.counts[S.PENDING] == 6
    assert batch.started_at == clock.now


async def test_complete_can_claim_the_next_documents_in_the_same_transaction(
    ledger: Ledger, sync_url: str
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(5))
    worker = await ledger.workers.register(concurrency=2)
    first = await ledger.queue.claim(worker, 2)
    result = await ledger.queue.complete(
        worker, [Outcome.done(d, {}) for d in first], claim=2, processors=["noop"]
    )
    assert sorted(result.recorded) == sorted(d.id for d in first)
    assert result.claimed is not None
    assert [d.source for d in result.claimed] == ["/d/2", "/d/3"]
    assert len({d.lease_token for d in [*first, *result.claimed]}) == 4
    rows = sql(sync_url, "SELECT status, count(*) FROM documents GROUP BY status")
    assert dict(rows) == {"done": 2, "running": 2, "pending": 1}
    assert sql(sync_url, "SELECT count(*) FROM attempts") == [(2,)]
    # Without a claim, nothing more is leased; a worker that runs no such processor gets none.
    plain = await ledger.queue.complete(worker, [Outcome.done(result.claimed[0], {})])
    assert plain.claimed is None
    other = await ledger.queue.complete(
        worker, [Outcome.done(result.claimed[1], {})], claim=5, processors=["ingest"]
    )
    assert other.claimed == [] and len(other.recorded) == 1


async def test_a_finish_that_claims_still_completes_the_batches_it_ended(
    ledger: Ledger, sync_url: str
) -> None:
    # The completion question is left out only for batches the same transaction leased from.
    await ledger.queue.submit(BatchSpec(id="small", processor="noop", priority=1), sources(2))
    await ledger.queue.submit(BatchSpec(id="big", processor="noop"), sources(5, "/e"))
    worker = await ledger.workers.register(concurrency=2)
    first = await ledger.queue.claim(worker, 2)
    assert {d.batch_id for d in first} == {"small"}
    result = await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in first], claim=2)
    assert result.claimed is not None and {d.batch_id for d in result.claimed} == {"big"}
    assert (await ledger.reads.batch("small")).complete
    assert not (await ledger.reads.batch("big")).complete
    # The last documents of a batch, finished with a claim that finds nothing more.
    queue = list(result.claimed)
    while queue:
        result = await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in queue], claim=2)
        queue = list(result.claimed or [])
    assert (await ledger.reads.batch("big")).complete
    completed = sql(sync_url, "SELECT batch_id FROM events WHERE kind = 'batch_completed'")
    assert sorted(completed) == [("big",), ("small",)]


async def test_a_finish_that_claims_from_its_batch_does_not_ask_if_it_completed(
    ledger: Ledger,
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(6))
    worker = await ledger.workers.register(concurrency=2)
    first = await ledger.queue.claim(worker, 2)
    sent: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", capture)
    try:
        result = await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in first], claim=4)
    finally:
        event.remove(ledger.engine.sync_engine, "before_cursor_execute", capture)
    assert result.claimed is not None and len(result.claimed) == 4
    assert not any("completed_at" in s and s.lstrip().startswith("UPDATE batches") for s in sent)


async def test_two_claimers_never_get_the_same_document(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(50))
    a = await ledger.workers.register(concurrency=1)
    b = await ledger.workers.register(concurrency=1)
    got_a, got_b = [], []
    while True:
        ca = await ledger.queue.claim(a, 7)
        cb = await ledger.queue.claim(b, 5)
        got_a += ca
        got_b += cb
        if not ca and not cb:
            break
    ids = [d.id for d in got_a + got_b]
    assert len(ids) == 50 and len(set(ids)) == 50


async def test_complete_records_result_attempt_and_event(ledger: Ledger, sync_url: str) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(2))
    worker = await ledger.workers.register(concurrency=2)
    first, second = await ledger.queue.claim(worker, 2)
    result = await ledger.queue.complete(
        worker, [Outcome.done(first, {"chars": 12}), Outcome.skipped(second, {"why": "dup"})]
    )
    assert sorted(result.recorded) == sorted([first.id, second.id]) and result.lost == []
    doc, attempts = await ledger.reads.document(first.id)
    assert doc.status is S.DONE and doc.result == {"chars": 12} and doc.finished_at
    assert doc.lease_owner is None and doc.error_code is None
    assert [(a.attempt, a.outcome, a.worker_id) for a in attempts] == [
        (1, AttemptOutcome.DONE, worker)
    ]
    kinds = [e.kind for e in await ledger.reads.events("b")]
    assert kinds == ["batch_created", "document_done", "document_skipped", "batch_completed"]
    batch = await ledger.reads.batch("b")
    assert batch.complete and batch.completed_at is not None


async def test_heartbeat_extends_held_leases_and_reports_lost_ones(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(2))
    worker = await ledger.workers.register(concurrency=2)
    a, b = await ledger.queue.claim(worker, 2)
    clock.advance(20)
    lost = await ledger.queue.heartbeat(worker, [(a.id, a.lease_token), (b.id, "not-my-token")])
    assert lost == [b.id]
    clock.advance(20)  # 40 s after the claim: only a's renewed lease is still valid
    assert await ledger.queue.rescue_expired() == 1
    doc_a, _ = await ledger.reads.document(a.id)
    doc_b, _ = await ledger.reads.document(b.id)
    assert doc_a.status is S.RUNNING and doc_b.status is S.PENDING


async def test_a_late_finisher_cannot_overwrite_the_new_owner(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(1))
    slow = await ledger.workers.register(concurrency=1)
    fast = await ledger.workers.register(concurrency=1)
    (old,) = await ledger.queue.claim(slow, 1)
    clock.advance(31)  # the slow worker's lease runs out
    (new,) = await ledger.queue.claim(fast, 1)  # rescue + claim in one transaction
    assert new.id == old.id and new.lease_token != old.lease_token and new.attempt == 2
    late = await ledger.queue.complete(slow, [Outcome.done(old, {"by": "slow"})])
    assert late.recorded == [] and late.lost == [old.id]
    assert await ledger.queue.heartbeat(slow, [(old.id, old.lease_token)]) == [old.id]
    await ledger.queue.complete(fast, [Outcome.done(new, {"by": "fast"})])
    doc, attempts = await ledger.reads.document(old.id)
    assert doc.result == {"by": "fast"}
    assert [a.outcome for a in attempts] == [AttemptOutcome.LEASE_EXPIRED, AttemptOutcome.DONE]
    assert attempts[0].worker_id == slow and attempts[1].worker_id == fast


async def test_expired_lease_on_last_attempt_fails_the_document(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop", max_attempts=2), sources(1))
    worker = await ledger.workers.register(concurrency=1)
    for _ in range(2):
        assert len(await ledger.queue.claim(worker, 1)) == 1
        clock.advance(31)
    assert await ledger.queue.claim(worker, 1) == []
    doc, attempts = await ledger.reads.document(1)
    assert doc.status is S.FAILED and doc.error_code == "lease_expired"
    assert "no attempts left" in (doc.error_message or "")
    assert doc.attempts == 2 and len(attempts) == 2


async def test_retryable_errors_back_off_exponentially_then_fail(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop", max_attempts=3), sources(1))
    worker = await ledger.workers.register(concurrency=1)
    delays = []
    for attempt in (1, 2):
        (doc,) = await ledger.queue.claim(worker, 1)
        assert doc.attempt == attempt
        await ledger.queue.complete(worker, [Outcome.failed(doc, retryable())])
        info, _ = await ledger.reads.document(doc.id)
        assert info.status is S.PENDING and info.error_code == "flaky"
        delays.append((info.next_attempt_at - clock.now).total_seconds())
        assert await ledger.queue.claim(worker, 1) == []  # not due yet
        clock.advance(delays[-1])
    assert delays == [10.0, 20.0]  # base 10 s, factor 2, no jitter in these settings
    (doc,) = await ledger.queue.claim(worker, 1)
    await ledger.queue.complete(worker, [Outcome.failed(doc, retryable())])
    info, attempts = await ledger.reads.document(doc.id)
    assert info.status is S.FAILED and "gave up after 3 attempts" in (info.error_message or "")
    assert [a.outcome for a in attempts] == ["retry", "retry", "failed"]


async def test_permanent_error_fails_at_once(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(1))
    worker = await ledger.workers.register(concurrency=1)
    (doc,) = await ledger.queue.claim(worker, 1)
    error = ErrorInfo(code="corrupt", message="not a PDF", retryable=False)
    await ledger.queue.complete(worker, [Outcome.failed(doc, error)])
    info, _ = await ledger.reads.document(doc.id)
    assert info.status is S.FAILED and info.error_code == "corrupt" and info.attempts == 1


def test_backoff_policy_schedule_jitter_cap_and_retry_after() -> None:
    policy = RetryPolicy(base=1.0, factor=3.0, cap=20.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, raw in [(1, 1.0), (2, 3.0), (3, 9.0), (4, 20.0), (10, 20.0)]:
        for _ in range(50):
            delay = policy.delay(attempt, rng=rng)
            assert raw * 0.5 <= delay <= raw
    assert policy.delay(1, retry_after=60.0, rng=rng) == 60.0
    assert RetryPolicy(jitter=0).delay(1000) == 600.0  # no overflow on huge attempt numbers


async def test_retry_failed_puts_back_only_failed_documents_with_a_fresh_budget(
    ledger: Ledger,
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop", max_attempts=1), sources(4))
    worker = await ledger.workers.register(concurrency=4)
    docs = await ledger.queue.claim(worker, 4)
    await ledger.queue.complete(
        worker,
        [
            Outcome.done(docs[0], {}),
            Outcome.failed(docs[1], ErrorInfo("a", "a", retryable=False)),
            Outcome.failed(docs[2], ErrorInfo("b", "b", retryable=False)),
            Outcome.failed(docs[3], retryable()),  # last attempt: fails
        ],
    )
    groups = {g.code: g.count for g in await ledger.reads.failures("b")}
    assert groups == {"a": 1, "b": 1, "flaky": 1}
    assert await ledger.control.retry_failed("b", code="a") == 1
    batch = await ledger.reads.batch("b")
    assert batch.counts[S.FAILED] == 2 and batch.counts[S.PENDING] == 1
    assert batch.completed_at is None
    (again,) = await ledger.queue.claim(worker, 4)
    assert again.id == docs[1].id and again.attempt == 1  # a fresh budget of attempts
    await ledger.queue.complete(
        worker, [Outcome.failed(again, ErrorInfo("a", "a", retryable=False))]
    )
    _, rows = await ledger.reads.document(again.id)
    assert [(a.attempt, a.outcome) for a in rows] == [  # numbered on across the retry
        (1, AttemptOutcome.FAILED),
        (2, AttemptOutcome.FAILED),
    ]
    assert await ledger.control.retry_failed("b") == 3


async def test_pause_resume_and_cancel(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(4))
    worker = await ledger.workers.register(concurrency=4)
    (running,) = await ledger.queue.claim(worker, 1)
    paused = await ledger.control.pause("b", reason="maintenance")
    assert paused.state is BatchState.PAUSED and paused.pause_reason == "maintenance"
    assert await ledger.queue.claim(worker, 4) == []
    resumed = await ledger.control.resume("b")
    assert resumed.state is BatchState.ACTIVE and resumed.pause_reason is None
    cancelled = await ledger.control.cancel("b")
    assert cancelled.counts[S.CANCELLED] == 3 and cancelled.counts[S.RUNNING] == 1
    assert await ledger.queue.claim(worker, 4) == []
    # The running document finishes; a retryable failure in a cancelled batch is final.
    await ledger.queue.complete(worker, [Outcome.failed(running, retryable())])
    batch = await ledger.reads.batch("b")
    assert batch.counts[S.CANCELLED] == 4 and batch.complete
    with pytest.raises(Conflict):
        await ledger.control.resume("b")
    with pytest.raises(Conflict):
        await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(5))


async def test_circuit_breaker_pauses_on_a_systemic_outage_and_resume_resets_it(
    db_url: str, clock: FakeClock
) -> None:
    from tests.conftest import settings_for

    settings = settings_for(db_url, breaker_window=5, breaker_threshold=0.8, max_attempts=10)
    async with await Ledger.open(settings, clock=clock) as ledger:
        await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(20))
        worker = await ledger.workers.register(concurrency=10)
        docs = await ledger.queue.claim(worker, 4)
        await ledger.queue.complete(
            worker, [Outcome.failed(d, retryable("http_503", systemic=True)) for d in docs]
        )
        assert (await ledger.reads.batch("b")).state is BatchState.ACTIVE  # 4 < window
        (doc,) = await ledger.queue.claim(worker, 1)
        await ledger.queue.complete(
            worker, [Outcome.failed(doc, retryable("http_503", systemic=True))]
        )
        batch = await ledger.reads.batch("b")
        assert batch.state is BatchState.PAUSED
        assert "5 of the last 5 attempts failed with http_503" in (batch.pause_reason or "")
        assert await ledger.queue.claim(worker, 1) == []
        await ledger.control.resume("b")
        (doc,) = await ledger.queue.claim(worker, 1)  # a fresh window: one failure does not trip it
        await ledger.queue.complete(
            worker, [Outcome.failed(doc, retryable("http_503", systemic=True))]
        )
        assert (await ledger.reads.batch("b")).state is BatchState.ACTIVE


async def test_document_specific_errors_do_not_trip_the_breaker(
    db_url: str, clock: FakeClock
) -> None:
    from tests.conftest import settings_for

    settings = settings_for(db_url, breaker_window=5)
    async with await Ledger.open(settings, clock=clock) as ledger:
        await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(10))
        worker = await ledger.workers.register(concurrency=10)
        docs = await ledger.queue.claim(worker, 10)
        bad = ErrorInfo(code="corrupt", message="bad pdf", retryable=False)
        await ledger.queue.complete(worker, [Outcome.failed(d, bad) for d in docs])
        assert (await ledger.reads.batch("b")).state is BatchState.ACTIVE


async def test_priority_first_then_fair_share_between_equal_batches(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="huge", processor="noop"), sources(1000, "/h"))
    await ledger.queue.submit(BatchSpec(id="small", processor="noop"), sources(10, "/s"))
    await ledger.queue.submit(
        BatchSpec(id="urgent", processor="noop", priority=5), sources(3, "/u")
    )
    worker = await ledger.workers.register(concurrency=20)
    first = await ledger.queue.claim(worker, 10)
    by_batch = Counter(d.batch_id for d in first)
    assert by_batch["urgent"] == 3  # higher priority is served first
    assert by_batch["small"] >= 3 and by_batch["huge"] >= 3  # the rest is shared
    second = await ledger.queue.claim(worker, 10)
    assert Counter(d.batch_id for d in second) == {"small": 5, "huge": 5} or (
        sum(1 for d in first + second if d.batch_id == "small") == 10
    )


async def test_progress_rate_and_eta(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources(30))
    worker = await ledger.workers.register(concurrency=10)
    for _ in range(2):
        docs = await ledger.queue.claim(worker, 10)
        clock.advance(5)
        await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in docs])
    progress = await ledger.reads.progress("b")
    assert progress.batch.counts[S.DONE] == 20
    assert progress.percent == pytest.approx(200 / 3)
    assert progress.rate == pytest.approx(2.0)  # 20 documents in the 10 s since the start
    assert progress.eta_seconds == pytest.approx(5.0)
    assert progress.last_finished_at == clock.now


async def test_reads_are_scoped_to_the_owner(ledger: Ledger) -> None:
    await ledger.queue.submit(BatchSpec(id="mine", processor="noop", owner="alice"), sources(1))
    with pytest.raises(NotFound):
        await ledger.reads.batch("mine", owner="bob")
    with pytest.raises(NotFound):
        await ledger.control.pause("mine", owner="bob")
    with pytest.raises(NotFound):
        await ledger.reads.document(1, owner="bob")
    assert (await ledger.reads.batches(owner="bob")).items == []
    assert [b.id for b in (await ledger.reads.batches(owner="alice")).items] == ["mine"]


async def test_batch_listing_pages_with_a_cursor(ledger: Ledger, clock: FakeClock) -> None:
    for n in range(5):
        await ledger.queue.submit(BatchSpec(id=f"b{n}", processor="noop"), [])
        clock.advance(1)
    first = await ledger.reads.batches(limit=2)
    second = await ledger.reads.batches(limit=2, cursor=first.next_cursor)
    third = await ledger.reads.batches(limit=2, cursor=second.next_cursor)
    ids = [b.id for b in first.items + second.items + third.items]
    assert ids == ["b4", "b3", "b2", "b1", "b0"] and third.next_cursor is None
    with pytest.raises(InvalidInput):
        await ledger.reads.batches(cursor="not-a-cursor")


async def test_bulk_submit_of_100k_documents(ledger: Ledger, sync_url: str) -> None:
    spec = BatchSpec(id="big", processor="noop")
    result = await ledger.queue.submit(
        spec, (SourceSpec(f"/big/{i:06d}", size=i) for i in range(100_000))
    )
    assert result.added == 100_000 and result.batch.counts[S.PENDING] == 100_000
    rows = sql(sync_url, "SELECT count(*), count(DISTINCT source), sum(source_size) FROM documents")
    assert tuple(rows[0]) == (100_000, 100_000, sum(range(100_000)))
