"""Backpressure: a remote service (an embedding endpoint, a vector store) saying "slow down".

An HTTP 429 is not a failure of the document: the service is asking for less traffic. So a
stage that meets one raises :class:`Throttled` with the wait the service asked for, and the
ledger reschedules the document at now + wait *without* charging it an attempt (the
attempt row is still written, with outcome ``throttled``). A document throttled more than
``LEDGER_THROTTLE_LIMIT`` times in a row is charged again, so a service that never stops
throttling fails the document in the end instead of holding it for ever.

:class:`AdaptiveLimiter` bounds the requests in flight to one service from this process by
additive increase, multiplicative decrease (AIMD, as TCP does): the limit grows by one after
``limit`` successes in a row and halves on a throttle, between 1 and the configured
concurrency. Requests that were already in flight when the limit was cut do not cut it
again: a burst of 429s answering one burst of requests halves the limit once.

Nothing here knows about HTTP clients or embedders; sinks raise and limit the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ledger.backoff import MAX_RETRY_AFTER, parse_retry_after
from ledger.errors import RetryableError, ServiceUnavailable

T = TypeVar("T")


class Throttled(RetryableError):
    """The remote service asked us to slow down (HTTP 429); try again after ``retry_after``
    seconds (None: the ledger's backoff decides)."""

    throttled = True

    def __init__(self, code: str, message: str | None = None, *, retry_after: float | None = None):
        # Not systemic: a rate limit says the service is busy, not broken, so it never
        # counts towards the circuit breaker by itself.
        super().__init__(code, message, retry_after=retry_after, systemic=False)


def is_throttle(exc: BaseException) -> bool:
    """True for a :class:`Throttled` error (or one that says it is, across a pickle)."""
    return getattr(exc, "throttled", False) is True


@dataclass
class Aimd:
    """The arithmetic of an adaptive limit, with no clock and no waiting (tested alone).

    ``epoch`` counts the decreases: a throttle reported for a request started in an older
    epoch (sent before the last cut) does not cut again.
    """

    ceiling: int
    floor: int = 1
    limit: int = 0
    streak: int = 0
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.ceiling < self.floor or self.floor < 1:
            raise ValueError(f"ceiling {self.ceiling} must be at least floor {self.floor} >= 1")
        if self.limit == 0:
            self.limit = self.ceiling
        self.limit = min(max(self.limit, self.floor), self.ceiling)

    def success(self) -> bool:
        """One request succeeded; True when the limit grew."""
        self.streak += 1
        if self.streak < self.limit or self.limit >= self.ceiling:
            return False
        self.limit += 1
        self.streak = 0
        return True

    def throttle(self, epoch: int) -> bool:
        """A request sent in ``epoch`` was throttled; True when the limit was cut."""
        self.streak = 0
        if epoch != self.epoch:
            return False
        self.epoch += 1
        self.limit = max(self.floor, self.limit // 2)
        return True


class AdaptiveLimiter:
    """At most ``limit`` holders at a time, the limit adapted by :class:`Aimd`. Use
    ``async with limiter.slot() as slot:`` and call ``slot.throttled()`` when the request
    was throttled; leaving the block without an error counts as a success, leaving it with
    another error counts as neither (a 500 is not a reason to send less)."""

    def __init__(self, ceiling: int, *, on_change: Callable[[int], None] | None = None) -> None:
        self.state = Aimd(ceiling=ceiling)
        self.in_use = 0
        self._changed = asyncio.Condition()
        self._on_change = on_change
        if on_change is not None:
            on_change(self.state.limit)

    @property
    def limit(self) -> int:
        return self.state.limit

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_use < self.state.limit)
            self.in_use += 1
        slot = Slot(self.state.epoch)
        try:
            yield slot
        except BaseException as exc:
            if is_throttle(exc):
                slot.throttled()
            raise
        else:
            slot.succeeded = True
        finally:
            await self._release(slot)

    async def _release(self, slot: Slot) -> None:
        async with self._changed:
            self.in_use -= 1
            before = self.state.limit
            if slot.was_throttled:
                self.state.throttle(slot.epoch)
            elif slot.succeeded:
                self.state.success()
            if self.state.limit != before and self._on_change is not None:
                self._on_change(self.state.limit)
            self._changed.notify_all()


class Slot:
    """One holder of an :class:`AdaptiveLimiter` slot."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.was_throttled = False
        self.succeeded = False

    def throttled(self) -> None:
        """Count this request as throttled even though the block ends without an error."""
        self.was_throttled = True


# Backoff between tries of a call retried within a deadline (a 5xx, or a 429 without
# Retry-After): 0.25 s doubling to 4 s, jittered down by up to half.
DEADLINE_BACKOFF = 0.25
DEADLINE_BACKOFF_CAP = 4.0


async def retry_within(
    call: Callable[[], Awaitable[T]],
    deadline_seconds: float,
    *,
    what: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """``call()``'s answer, trying again on a retryable error (a throttle waits its
    Retry-After) as long as the next try starts within ``deadline_seconds``. Permanent
    errors pass through at once. Past the deadline: :class:`ServiceUnavailable` naming
    ``what`` and the last error, with the wait the service last asked for."""
    rng = rng or random.Random()
    ends = clock() + deadline_seconds
    tries = 0
    while True:
        tries += 1
        try:
            return await call()
        except RetryableError as exc:
            backoff = min(DEADLINE_BACKOFF * 2 ** (tries - 1), DEADLINE_BACKOFF_CAP)
            wait = backoff * (1 - 0.5 * rng.random())
            if exc.retry_after is not None:
                wait = max(wait, exc.retry_after) if not is_throttle(exc) else exc.retry_after
            if clock() + wait > ends:
                raise ServiceUnavailable(
                    exc.code,
                    f"{what} failed for {deadline_seconds:g} s ({tries} tries); the last "
                    f"answer: {exc.message}",
                    retry_after=max(wait, 1.0),
                ) from exc
            await sleep(wait)


__all__ = [
    "MAX_RETRY_AFTER",
    "AdaptiveLimiter",
    "Aimd",
    "Slot",
    "Throttled",
    "is_throttle",
    "parse_retry_after",
    "retry_within",
]
