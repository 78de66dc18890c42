"""Writing one sink's claimed rows: the points of a round's rows go to the store together.

A store's write has a fixed cost per call (LanceDB commits a new table version per
``merge_insert``; a server answers one request per call), and so does each read of the
ledger, so a round is written in pages: the chunks of all its rows' documents are read
``PAGE`` at a time, in (document, ordinal) order, and upserted in writes of the sink's
current write size (``ledger/sinks/pacing.py``: smaller while the store throttles); as soon
as all of a document's chunks are written, its row's other points are deleted (older
versions; all of them for a removed source) and the row is done. Memory is a page. An
error stops the round for this sink: the rows already done stay done, the others get the
error (retried with backoff: a store that fails one call usually fails the next; a
throttle waits what the store asked for, without spending an attempt). The ledger records
the outcomes afterwards, so a crash anywhere here leaves every row to be written again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import MAX_RETRY_AFTER
from ledger.backpressure import is_throttle
from ledger.index import sink_rows
from ledger.index.sink_rows import ChunkRecord, DocumentVersion, SinkTask
from ledger.sinks.base import Sink, SinkError, SinkPoint
from ledger.sinks.pacing import WritePace

if TYPE_CHECKING:
    from ledger.app import Ledger

PAGE = 1_000  # chunks read, and points upserted, at a time: bounds a round's memory

StoreCall = Callable[[Callable[[Sink], Any]], Awaitable[Any]]
PointsOf = Callable[[DocumentVersion, Sequence[ChunkRecord]], list[SinkPoint]]


@dataclass(frozen=True)
class Outcome:
    """What writing one row did: ``points`` written, ``removed`` (nothing of the source
    is left to mirror), or the store's ``error``."""

    points: int = 0
    removed: bool = False
    error: SinkError | None = None


def as_sink_error(sink: str, exc: Exception) -> SinkError:
    """A store's own exception as the row's error (its message, retried unless a
    :class:`SinkError` says permanent; a throttle, ``ledger.backpressure.Throttled`` among
    them, keeps its wait, bounded to what the ledger honours)."""
    if isinstance(exc, SinkError):
        if not exc.throttled:
            return exc
        message = exc.message
    else:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = f"sink {sink!r}: {reason}"
        if not is_throttle(exc):
            return SinkError(message)
    wait = getattr(exc, "retry_after", None)
    if isinstance(wait, int | float) and not isinstance(wait, bool):
        wait = min(max(float(wait), 0.0), MAX_RETRY_AFTER)
    else:
        wait = None
    return SinkError(message, throttled=True, retry_after=wait)


def _upsert(points: list[SinkPoint]) -> Callable[[Sink], None]:
    return lambda s: s.upsert(points)


def _remove_all(source_key: str) -> Callable[[Sink], None]:
    return lambda s: s.delete(source_key)


def _tidy(task: SinkTask, version: DocumentVersion, written: int) -> Callable[[Sink], None] | None:
    """The delete that follows a row's upsert: the source's other points. Generation 1 is
    the first version the row names, so the store holds no other (a row is deleted only
    once its source's points are gone): nothing to delete (None)."""
    if task.generation == 1:
        return None
    document = version.document_id
    return lambda s: s.delete(task.source_key, keep_document=document, keep=written)


class SinkWriter:
    """Writes one sink's rows of a round (see the module docstring)."""

    def __init__(
        self, ledger: Ledger, sink: str, store: StoreCall, points_of: PointsOf, pace: WritePace
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.store = store
        self.points_of = points_of
        self.pace = pace

    async def write(self, tasks: Sequence[SinkTask]) -> dict[int, Outcome]:
        """Every row's outcome, by row id."""
        done: dict[int, Outcome] = {}
        try:
            await self._write(tasks, done)
        except Exception as exc:  # the store's or the database's: the rest are tried again
            error = as_sink_error(self.sink, exc)
            return {task.id: done.get(task.id) or Outcome(error=error) for task in tasks}
        return done

    async def _call(self, action: Callable[[Sink], Any]) -> None:
        """One store call, its throttle or success reported to the pace."""
        token = self.pace.started()
        try:
            await self.store(action)
        except Exception as exc:
            if is_throttle(exc):
                self.pace.throttled(token)
            raise
        self.pace.succeeded()

    async def _write(self, tasks: Sequence[SinkTask], done: dict[int, Outcome]) -> None:
        async def current(conn: AsyncConnection, now: datetime) -> dict[int, DocumentVersion]:
            return await sink_rows.versions_of(conn, tasks)

        versions = await self.ledger.runner.run(current, write=False)
        for task in tasks:  # removals first: a delete each, nothing to read
            if task.id not in versions:
                await self._call(_remove_all(task.source_key))
                done[task.id] = Outcome(removed=True)
        by_document = {v.document_id: v for v in versions.values()}
        rows_of: dict[int, list[SinkTask]] = {}
        for task in tasks:
            if task.id in versions:
                rows_of.setdefault(versions[task.id].document_id, []).append(task)
        counts = dict.fromkeys(by_document, 0)
        after = (-1, -1)
        while by_document:

            async def page(
                conn: AsyncConnection, now: datetime, after: tuple[int, int] = after
            ) -> list[ChunkRecord]:
                return await sink_rows.chunk_page(conn, list(by_document), after=after, limit=PAGE)

            records = await self.ledger.runner.run(page, write=False)
            points: list[SinkPoint] = []
            ends: dict[int, int] = {}  # document -> how many of the page's points end it
            for document_id in dict.fromkeys(r.document_id for r in records):
                mine = [r for r in records if r.document_id == document_id]
                points.extend(self.points_of(by_document[document_id], mine))
                counts[document_id] += len(mine)
                ends[document_id] = len(points)
            last = len(records) < PAGE
            # Chunks come in document order: a document before the page's last one (any, on
            # the last page) is complete once the points it has on this page are written.
            bound = None if last else records[-1].document_id
            sent = 0
            while True:
                for document_id in list(by_document):
                    if (bound is None or document_id < bound) and ends.get(document_id, 0) <= sent:
                        await self._finish(by_document.pop(document_id), rows_of, counts, done)
                if sent >= len(points):
                    break
                size = self.pace.points
                await self._call(_upsert(points[sent : sent + size]))
                sent += size
            if last:
                break
            after = (records[-1].document_id, records[-1].ordinal)

    async def _finish(
        self,
        version: DocumentVersion,
        rows_of: dict[int, list[SinkTask]],
        counts: dict[int, int],
        done: dict[int, Outcome],
    ) -> None:
        """All of ``version``'s points are written: delete its source's others; its rows
        are done."""
        written = counts[version.document_id]
        for task in rows_of[version.document_id]:
            tidy = _tidy(task, version, written)
            if tidy is not None:
                await self._call(tidy)
            done[task.id] = Outcome(points=written)
