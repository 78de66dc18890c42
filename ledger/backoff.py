"""When to try a document again after a retryable failure."""

from __future__ import annotations

import email.utils
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: base * factor**(attempt-1), capped, then jittered.

    Jitter spreads the retries of many documents that failed together (an outage) so they do
    not all come back at the same instant.
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 600.0
    jitter: float = 0.25  # the delay is scaled by a random factor in [1 - jitter, 1]

    def delay(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``retry_after`` (what the remote side asked for) is a floor, never shortened by jitter.
        """
        exponent = max(attempt - 1, 0)
        raw = self.base * self.factor ** min(exponent, 64)
        capped = min(self.cap, raw)
        scale = 1.0 - self.jitter * (rng or random).random()
        delay = capped * scale
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.
    None when absent or unreadable; capped at an hour."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
