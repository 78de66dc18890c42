"""The database server's clock, read once a minute instead of once per transaction.

On PostgreSQL every worker, on every machine, judges leases by the server's clock. Asking
the server (`SELECT now()`) in each transaction cost a round trip per transaction; instead
the server's time is read now and then and carried forward on this process's monotonic
clock, which never jumps with NTP or a changed system time. Between readings the estimate
drifts by the local oscillator's error (parts per million: microseconds per minute) plus
half a round trip, against leases of tens of seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

RESYNC_SECONDS = 60.0


class ServerClock:
    """The server's time, estimated from a reading of at most ``resync_seconds`` ago."""

    def __init__(
        self,
        *,
        resync_seconds: float = RESYNC_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._resync = resync_seconds
        self._monotonic = monotonic
        self._reading: tuple[datetime, float] | None = None  # (server time, local monotonic)

    async def now(self, conn: AsyncConnection) -> datetime:
        local = self._monotonic()
        if self._reading is None or local - self._reading[1] >= self._resync:
            before = self._monotonic()
            value = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
            after = self._monotonic()
            assert isinstance(value, datetime)
            # The server read its clock somewhere in the round trip: take the middle.
            self._reading = (value.astimezone(UTC), (before + after) / 2)
            local = after
        server, at = self._reading
        return server + timedelta(seconds=local - at)
