"""The sink stage: mirror each claimed sink row's version of a source into its store.

A round claims due rows (one committed transaction, leases), then, with no transaction
open, reads each row's chunks a page at a time, upserts them as points with stable ids,
deletes the source's other points (older versions, or all of them for a removal), and
records every outcome in one transaction fenced by lease token and generation.

Crash repair: a process killed after the store's write and before the ledger's commit
leaves the row pending with a lease; when the lease runs out the next round writes the
same points again (same ids: replaced, not added) and deletes by filter whatever else the
source has in the store, so nothing is duplicated and nothing is orphaned.

Backpressure: a store that throttles (HTTP 429) gets smaller writes (``pacing.py``) and its
rows come back after the wait it asked for without spending an attempt, up to
LEDGER_THROTTLE_LIMIT throttles in a row; past it each throttle is charged, so a store
that never stops throttling fails its rows after LEDGER_SINK_MAX_ATTEMPTS. A throttle
never fails a row by itself and never pauses anything.
"""

from __future__ import annotations

import array
import asyncio
import logging
import random
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import metrics
from ledger.backoff import RetryPolicy
from ledger.index import sink_rows
from ledger.index.sink_rows import ChunkRecord, DocumentVersion, SinkTask
from ledger.leased_stage import LeasedStage
from ledger.queue.throttles import past_limit_message, throttle_delay
from ledger.sinks.base import Sink, SinkError, SinkPoint, point_id
from ledger.sinks.pacing import DEFAULT_WRITE_SIZE, WritePace
from ledger.sinks.profiles import profiles_for
from ledger.sinks.registry import build_sink
from ledger.sinks.writer import Outcome, SinkWriter

if TYPE_CHECKING:
    from ledger.app import Ledger

log = logging.getLogger(__name__)
T = TypeVar("T")

ROWS_PER_ROUND = 256  # rows claimed, written and recorded together


def floats_of(data: bytes | None) -> list[float] | None:
    """A stored vector (float32 little-endian) as a list of floats; None stays None."""
    if data is None:
        return None
    values = array.array("f")
    values.frombytes(data)
    if sys.byteorder == "big":  # stored little-endian
        values.byteswap()
    return values.tolist()


def points_of(version: DocumentVersion, records: Sequence[ChunkRecord]) -> list[SinkPoint]:
    """The points of a page of a version's chunks: ids stable per version and ordinal."""
    return [
        SinkPoint(
            id=point_id(version.source_key, version.document_id, version.sha256, r.ordinal),
            vector=floats_of(r.vector),
            payload={
                "text": r.text,
                "source_key": version.source_key,
                "display_name": version.display_name,
                "page": r.page,
                "char_start": r.char_start,
                "char_end": r.char_end,
                "ordinal": r.ordinal,
                "sha256": version.sha256,
                "batch_id": version.batch_id,
                "document_id": version.document_id,
            },
        )
        for r in records
    ]


class SinkStage(LeasedStage[SinkTask, list[Outcome], None]):
    """Mirrors sink rows for one ledger. Any number may run; leases keep each row with one
    stage at a time. Each sink's store calls run on its own thread, one at a time. A round
    claims up to ``ROWS_PER_ROUND`` rows, writes them and records every outcome at once."""

    what = "sink round"

    def __init__(self, ledger: Ledger, *, rng: random.Random | None = None) -> None:
        settings = ledger.settings
        self.ledger = ledger
        self.lease = timedelta(seconds=settings.sink_lease_seconds)
        self.max_attempts = settings.sink_max_attempts
        self.throttle_limit = settings.throttle_limit
        self.policy = RetryPolicy(base=2.0, factor=2.0, cap=600.0, jitter=0.5)
        self._rng = rng or random.Random()
        self._sinks: dict[str, tuple[Sink, ThreadPoolExecutor]] = {}
        self._paces: dict[str, WritePace] = {}

    def pace(self, name: str) -> WritePace:
        """The adaptive write size of sink ``name``, kept from round to round."""
        pace = self._paces.get(name)
        if pace is None:
            profile = profiles_for(self.ledger.settings).get(name)
            # The profile's write_size is checked when the profiles are read.
            size = profile.settings.get("write_size") if profile is not None else None
            kind = profile.kind if profile is not None else "unknown"

            def gauge(points: int) -> None:
                metrics.observe_stage_limit(f"sink:{name}", kind, points)

            pace = self._paces[name] = WritePace(size or DEFAULT_WRITE_SIZE, on_change=gauge)
        return pace

    async def _store(self, name: str, call: Callable[[Sink], T]) -> T:
        held = self._sinks.get(name)
        if held is None:
            profile = profiles_for(self.ledger.settings).get(name)
            if profile is None:
                raise SinkError(f"no sink profile {name!r} in LEDGER_SINKS", permanent=True)
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{name}")
            loop = asyncio.get_running_loop()
            try:
                sink = await loop.run_in_executor(executor, build_sink, profile)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            held = self._sinks[name] = (sink, executor)
        sink, executor = held
        return await asyncio.get_running_loop().run_in_executor(executor, call, sink)

    async def close(self) -> None:
        """Close every store client this stage opened."""
        held, self._sinks = self._sinks, {}
        for sink, executor in held.values():
            try:
                await asyncio.get_running_loop().run_in_executor(executor, sink.close)
            finally:
                executor.shutdown(wait=True)

    async def write(self, tasks: Sequence[SinkTask]) -> list[Outcome]:
        """The store writes of a round's rows, each sink's together; no transaction is
        open while they run. Returns each row's outcome, in order."""
        outcomes: dict[int, Outcome] = {}
        for sink in dict.fromkeys(t.sink for t in tasks):

            async def call(action: Callable[[Sink], Any], sink: str = sink) -> Any:
                return await self._store(sink, action)

            mine = [t for t in tasks if t.sink == sink]
            writer = SinkWriter(self.ledger, sink, call, points_of, self.pace(sink))
            outcomes.update(await writer.write(mine))
        return [outcomes[t.id] for t in tasks]

    async def has_work(self) -> bool:
        async def look(conn: AsyncConnection, now: datetime) -> bool:
            return await sink_rows.anything_due(conn, now=now)

        return await self.ledger.runner.run(look, write=False)

    async def claim(self, conn: AsyncConnection, now: datetime) -> list[SinkTask]:
        return await sink_rows.claim(conn, now=now, lease=self.lease, limit=ROWS_PER_ROUND)

    async def work(self, claimed: Sequence[SinkTask]) -> list[Outcome]:
        return await self.write(claimed)

    async def record(
        self,
        conn: AsyncConnection,
        now: datetime,
        claimed: Sequence[SinkTask],
        done: list[Outcome],
    ) -> None:
        for task, outcome in zip(claimed, done, strict=True):
            await self._record(conn, task, outcome, now)

    def recorded(self, claimed: Sequence[SinkTask], done: list[Outcome], recorded: None) -> None:
        for task, outcome in zip(claimed, done, strict=True):
            if outcome.error is not None and outcome.error.throttled:
                metrics.observe_sink_throttled(task.sink)

    async def _record(
        self, conn: AsyncConnection, task: SinkTask, outcome: Outcome, now: datetime
    ) -> None:
        if outcome.error is None:
            kept = await sink_rows.record_done(
                conn, task, points=outcome.points, removed=outcome.removed, now=now
            )
            what = "removed" if outcome.removed else f"{outcome.points} points"
        elif outcome.error.throttled and task.throttles < self.throttle_limit:
            error = outcome.error
            wait = throttle_delay(task.throttles, error.retry_after, self.policy, self._rng)
            kept = await sink_rows.record_throttle(
                conn, task, error.message, retry_at=now + timedelta(seconds=wait), now=now
            )
            what = f"throttled, again in {wait:.1f} s (no attempt spent): {error.message}"
        else:
            error = outcome.error
            message = error.message
            if error.throttled:
                message = past_limit_message(message, task.throttles, self.throttle_limit)
            attempt = task.attempts + 1
            final = error.permanent or attempt >= self.max_attempts
            delay = self.policy.delay(attempt, retry_after=error.retry_after, rng=self._rng)
            retry_at = None if final else now + timedelta(seconds=delay)
            kept = await sink_rows.record_error(
                conn, task, message, retry_at=retry_at, now=now, throttled=error.throttled
            )
            what = ("failed: " if final else "will retry: ") + message
        log.info(
            "sink %s row %s: %s%s",
            task.sink,
            task.id,
            what,
            "" if kept else " (the version changed meanwhile: mirrored again next round)",
            extra={"batch_id": task.batch_id, "document_id": task.document_id},
        )

    async def run(self, *, interval: float | None = None) -> None:
        """Run rounds every ``interval`` seconds (LEDGER_SINK_SCAN_SECONDS) until
        cancelled (see :class:`ledger.leased_stage.LeasedStage`)."""
        await super().run(interval=interval or self.ledger.settings.sink_scan_seconds)
