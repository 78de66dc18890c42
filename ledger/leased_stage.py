"""The loop of a stage that works through leased outbox rows (sink rows, webhook deliveries).

A round claims due rows in one committed transaction (their leases: ``queue/leasing.py``),
does the round's work with no transaction open (writes to a vector store, HTTP posts), and
records every outcome in one transaction fenced by the leases; then the next round, until a
claim finds nothing. :meth:`LeasedStage.run` does that every interval until cancelled: a
failed round (the database away) is logged and tried again next time, since each round is
atomic and an unrecorded one leaves leases that run out.

A stage says what it claims, does and records; the loop is written once here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.lost_connection import log_failed_round

if TYPE_CHECKING:
    from ledger.app import Ledger

log = logging.getLogger(__name__)
Row = TypeVar("Row")
Work = TypeVar("Work")
Recorded = TypeVar("Recorded")


class LeasedStage(Generic[Row, Work, Recorded]):
    """Claim, work, record, in rounds. ``Row``: a claimed row; ``Work``: what a round's work
    produced; ``Recorded``: what recording it returned."""

    ledger: Ledger
    what = "round"  # how the log names a failed round

    async def has_work(self) -> bool:
        """Whether a round may find anything (a read, so an idle stage takes no write lock);
        may prepare rows first."""
        raise NotImplementedError

    async def claim(self, conn: AsyncConnection, now: datetime) -> list[Row]:
        """Lease one round of due rows (in the claim's transaction)."""
        raise NotImplementedError

    async def work(self, claimed: Sequence[Row]) -> Work:
        """The round's work, with no transaction open."""
        raise NotImplementedError

    async def record(
        self, conn: AsyncConnection, now: datetime, claimed: Sequence[Row], done: Work
    ) -> Recorded:
        """Record the round's outcomes (in one transaction, fenced by the leases)."""
        raise NotImplementedError

    def recorded(self, claimed: Sequence[Row], done: Work, recorded: Recorded) -> None:
        """After the record committed: logs and metrics (counted once, as a transaction
        retried on a busy database runs again)."""

    async def close(self) -> None:
        """Release what the stage opened (clients, threads)."""

    async def run_round(self) -> int:
        """Claim one round of due rows, work them, record every outcome in one
        transaction; returns how many rows were claimed."""
        claimed = await self.ledger.runner.run(self.claim)
        if not claimed:
            return 0
        done = await self.work(claimed)

        async def record(conn: AsyncConnection, now: datetime) -> Recorded:
            return await self.record(conn, now, claimed, done)

        self.recorded(claimed, done, await self.ledger.runner.run(record))
        return len(claimed)

    async def run_once(self) -> int:
        """Work what is due until nothing is; returns how many rows were claimed."""
        if not await self.has_work():
            return 0
        total = 0
        while claimed := await self.run_round():
            total += claimed
        return total

    async def run(self, *, interval: float) -> None:
        """Run rounds every ``interval`` seconds until cancelled, then close."""
        try:
            while True:
                try:
                    await self.run_once()
                except Exception as exc:  # the loop outlives a bad round; each is atomic
                    log_failed_round(log, self.what, exc, interval)
                await asyncio.sleep(interval)
        finally:
            await self.close()
