"""The sink stage's adaptive write size, step by step (injected events, no store, no clock);
and how a store's exceptions become a row's error (throttles keep their bounded wait)."""

from __future__ import annotations

import pytest

from ledger.backoff import MAX_RETRY_AFTER
from ledger.backpressure import Throttled
from ledger.sinks.base import SinkError
from ledger.sinks.pacing import STEPS, WritePace
from ledger.sinks.writer import as_sink_error


def test_a_throttle_halves_the_write_size_and_a_run_of_successes_grows_it_one_step() -> None:
    seen: list[int] = []
    pace = WritePace(800, on_change=seen.append)
    assert pace.points == 800 and seen == [800]  # full size, shown at once
    token = pace.started()
    pace.throttled(token)
    assert pace.points == 400 and seen[-1] == 400
    # A write sent before the cut that is throttled too does not cut again.
    pace.throttled(token)
    assert pace.points == 400
    pace.throttled(pace.started())
    assert pace.points == 200
    # Two steps now: two successes in a row grow it by one step (100 points).
    pace.succeeded()
    assert pace.points == 200
    pace.succeeded()
    assert pace.points == 300 and seen[-1] == 300
    # A throttle resets the run of successes.
    pace.succeeded()
    pace.throttled(pace.started())
    assert pace.points == 100
    assert seen == [800, 400, 200, 300, 100]


def test_the_write_size_stays_between_one_step_and_the_profiles_size() -> None:
    pace = WritePace(24)
    for _ in range(10):
        pace.throttled(pace.started())
    assert pace.points == 24 // STEPS
    for _ in range(1_000):
        pace.succeeded()
    assert pace.points == 24
    tiny = WritePace(3)
    for _ in range(5):
        tiny.throttled(tiny.started())
    assert tiny.points == 1  # never zero
    with pytest.raises(ValueError, match="at least 1"):
        WritePace(0)


def test_a_stores_throttle_becomes_a_throttled_error_with_its_wait() -> None:
    error = as_sink_error("s", Throttled("rate_limited", "slow down", retry_after=2.5))
    assert error.throttled and error.retry_after == 2.5 and not error.permanent
    assert "slow down" in error.message and "'s'" in error.message
    plugin = SinkError("busy", retry_after=1e9)
    error = as_sink_error("s", plugin)
    assert error.throttled and error.retry_after == MAX_RETRY_AFTER
    no_wait = as_sink_error("s", SinkError("busy", throttled=True))
    assert no_wait.throttled and no_wait.retry_after is None
    # A permanent refusal is never a throttle, whatever it says about waiting.
    refused = SinkError("bad key", permanent=True, retry_after=5)
    assert as_sink_error("s", refused) is refused and not refused.throttled
    other = as_sink_error("s", ConnectionError("refused"))
    assert not other.throttled and other.message == "sink 's': ConnectionError: refused"
