"""The pure logic of backpressure: the AIMD limit with its events injected, the limiter's
slots, retrying within a deadline on a fake clock, Retry-After parsing, and how the finish
path schedules a throttle."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from ledger.backoff import RetryPolicy
from ledger.backpressure import (
    AdaptiveLimiter,
    Aimd,
    Throttled,
    is_throttle,
    parse_retry_after,
    retry_within,
)
from ledger.errors import PermanentError, RetryableError, ServiceUnavailable
from ledger.model import ClaimedDocument, ErrorInfo, Outcome
from ledger.queue.throttles import throttle_delay
from ledger.states import AttemptOutcome
from ledger.worker.outcomes import error_info


def test_aimd_halves_on_a_throttle_and_grows_by_one_after_a_run_of_successes() -> None:
    aimd = Aimd(ceiling=8)
    assert aimd.limit == 8
    assert aimd.throttle(aimd.epoch) and aimd.limit == 4
    assert aimd.throttle(aimd.epoch) and aimd.limit == 2
    assert aimd.throttle(aimd.epoch) and aimd.limit == 1
    assert aimd.throttle(aimd.epoch) and aimd.limit == 1  # the floor
    # Growth needs `limit` successes in a row: 1, then 2, then 3 ...
    assert aimd.success() and aimd.limit == 2
    assert not aimd.success()
    assert aimd.success() and aimd.limit == 3
    for _ in range(2):
        assert not aimd.success()
    aimd.throttle(aimd.epoch)  # a throttle breaks the run
    assert aimd.limit == 1 and aimd.streak == 0


def test_aimd_never_grows_past_its_ceiling() -> None:
    aimd = Aimd(ceiling=3, limit=2)
    grown = [aimd.success() for _ in range(20)]
    assert aimd.limit == 3
    assert grown.count(True) == 1


def test_throttles_of_requests_sent_before_a_cut_do_not_cut_again() -> None:
    aimd = Aimd(ceiling=16)
    sent_together = aimd.epoch  # a burst of 16 requests, all answered 429
    cuts = [aimd.throttle(sent_together) for _ in range(16)]
    assert cuts.count(True) == 1 and aimd.limit == 8
    assert aimd.throttle(aimd.epoch) and aimd.limit == 4  # one sent after the cut does


def test_aimd_rejects_a_ceiling_below_the_floor() -> None:
    with pytest.raises(ValueError, match="ceiling 0 must be at least floor 1"):
        Aimd(ceiling=0)


async def test_the_limiter_holds_requests_to_its_limit_and_reports_changes() -> None:
    seen: list[int] = []
    limiter = AdaptiveLimiter(4, on_change=seen.append)
    with pytest.raises(Throttled):
        async with limiter.slot():
            raise Throttled("x_429", retry_after=1.0)
    assert limiter.limit == 2 and seen == [4, 2]
    with pytest.raises(RetryableError):
        async with limiter.slot():
            raise RetryableError("x_5xx")  # not a reason to send less, nor a success
    assert limiter.limit == 2 and limiter.state.streak == 0

    gate = asyncio.Event()

    async def request() -> None:
        async with limiter.slot():
            await gate.wait()

    tasks = [asyncio.create_task(request()) for _ in range(6)]
    for _ in range(50):
        await asyncio.sleep(0)
    assert limiter.in_use == 2  # the other four wait for a slot
    gate.set()
    await asyncio.gather(*tasks)
    assert limiter.in_use == 0
    assert limiter.limit == 4 and seen == [4, 2, 3, 4]  # 6 successes: +1 after 2, +1 after 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_retry_within_waits_out_a_throttle_then_answers() -> None:
    clock = FakeClock()
    answers: list[Exception] = [Throttled("q_429", retry_after=2.0), RetryableError("q_5xx")]

    async def call() -> str:
        if answers:
            raise answers.pop(0)
        return "vector"

    got = await retry_within(call, 10.0, what="q", clock=clock, sleep=clock.sleep)
    assert got == "vector"
    assert clock.slept[0] == 2.0  # the Retry-After exactly
    assert 0.125 <= clock.slept[1] <= 0.5  # then a jittered backoff


async def test_retry_within_gives_up_at_the_deadline_with_the_last_answer() -> None:
    clock = FakeClock()
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        raise Throttled("q_429", "the endpoint answered 429: slow down", retry_after=3.0)

    with pytest.raises(ServiceUnavailable) as caught:
        await retry_within(call, 10.0, what="embedding the query", clock=clock, sleep=clock.sleep)
    assert calls == 4 and clock.now == 9.0  # a fourth wait would end past the deadline
    assert caught.value.retry_after == 3.0
    assert caught.value.code == "q_429"
    assert "embedding the query failed for 10 s (4 tries)" in caught.value.message
    assert "slow down" in caught.value.message


async def test_retry_within_passes_a_permanent_error_through_at_once() -> None:
    clock = FakeClock()

    async def call() -> str:
        raise PermanentError("q_4xx", "refused")

    with pytest.raises(PermanentError):
        await retry_within(call, 10.0, what="q", clock=clock, sleep=clock.sleep)
    assert clock.slept == []


def test_retry_after_is_never_negative_nor_nan() -> None:
    # (Seconds, HTTP dates and the cap: tests/embed/test_http.py.)
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("-5", now=now) == 0.0
    assert parse_retry_after("nan", now=now) is None
    assert parse_retry_after("inf", now=now) is None


def test_a_throttle_becomes_a_throttled_outcome_across_a_pickle() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(Throttled("embed_http_429", "busy", retry_after=1.5)))
    assert is_throttle(error) and error.retryable and not error.systemic
    info = error_info(error)
    assert info == ErrorInfo(
        "embed_http_429", "busy", retryable=True, retry_after=1.5, throttled=True
    )
    doc = ClaimedDocument(
        id=1, batch_id="b", source="s", attempt=1, max_attempts=3, lease_token="t",
        lease_expires_at=datetime.now(UTC), started_at=datetime.now(UTC), processor="p",
        options={}, size=None, mtime_ns=None, sha256=None, meta=None,
    )  # fmt: skip
    assert Outcome.failed(doc, info).outcome is AttemptOutcome.THROTTLED
    plain = error_info(RetryableError("embed_http_5xx"))
    assert Outcome.failed(doc, plain).outcome is AttemptOutcome.RETRY


def test_a_throttle_waits_what_was_asked_spread_later_else_the_backoff() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(base=2.0, factor=2.0, cap=600.0, jitter=0.25)
    for _ in range(100):
        assert 5.0 <= throttle_delay(0, 5.0, policy, rng) <= 6.0
    # No Retry-After: the backoff, growing with the run of throttles.
    assert 1.5 <= throttle_delay(0, None, policy, rng) <= 2.0
    assert 6.0 <= throttle_delay(2, None, policy, rng) <= 8.0


def test_the_adaptive_limit_is_a_gauge_of_the_process() -> None:
    from ledger import metrics

    metrics.observe_stage_limit("embed", "gauge-test-model", 3)  # before the registry exists
    registry = metrics.registry()
    labels = {"stage": "embed", "target": "gauge-test-model"}
    assert registry.get_sample_value("ledger_stage_concurrency", labels) == 3
    metrics.observe_stage_limit("embed", "gauge-test-model", 1)
    assert registry.get_sample_value("ledger_stage_concurrency", labels) == 1
    assert metrics.stage_limits()[("embed", "gauge-test-model")] == 1
