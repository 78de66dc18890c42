"""Writing one sink's claimed rows: the points of a round's rows go to the store together.

A store's write has a fixed cost per call (LanceDB commits a new table version per
``merge_insert``; a server answers one request per call), and so does each read of the
ledger, so a round is written in pages: the chunks of all its rows' documents are read
``PAGE`` at a time, in (document, ordinal) order, and each page is one upsert; then each
row's other points are deleted (older versions, or all of a removed source). Memory is a
page. An error fails the round's rows of this sink (they are retried with backoff: a
store that fails one call usually fails the next); the ledger records the outcomes
afterwards, so a crash anywhere here leaves every row to be written again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.core import sink_rows
from ledger.core.sink_rows import ChunkRecord, DocumentVersion, SinkTask
from ledger.sinks.base import Sink, SinkError, SinkPoint

if TYPE_CHECKING:
    from ledger.core.ledger import Ledger

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
    :class:`SinkError` says permanent)."""
    if isinstance(exc, SinkError):
        return exc
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return SinkError(f"sink {sink!r}: {reason}")


def _upsert(points: list[SinkPoint]) -> Callable[[Sink], None]:
    return lambda s: s.upsert(points)


def _tidy(task: SinkTask, version: DocumentVersion | None, written: int) -> Callable[[Sink], None]:
    """The delete that follows a row's upsert: every point of a removed source; for a new
    version, the source's other points. Generation 1 is the first version the row names,
    so the store holds no other (a row is deleted only once its source's points are gone):
    nothing to delete."""
    if version is None:
        return lambda s: s.delete(task.source_key)
    if task.generation == 1:
        return lambda s: None
    document = version.document_id
    return lambda s: s.delete(task.source_key, keep_document=document, keep=written)


class SinkWriter:
    """Writes one sink's rows of a round (see the module docstring)."""

    def __init__(self, ledger: Ledger, sink: str, store: StoreCall, points_of: PointsOf) -> None:
        self.ledger = ledger
        self.sink = sink
        self.store = store
        self.points_of = points_of

    async def write(self, tasks: Sequence[SinkTask]) -> dict[int, Outcome]:
        """Every row's outcome, by row id."""
        try:
            written = await self._write(tasks)
        except Exception as exc:  # the store's or the database's: the rows are tried again
            error = as_sink_error(self.sink, exc)
            return {task.id: Outcome(error=error) for task in tasks}
        return {
            task.id: Outcome(points=count, removed=version is None)
            for task, (version, count) in written.items()
        }

    async def _write(
        self, tasks: Sequence[SinkTask]
    ) -> dict[SinkTask, tuple[DocumentVersion | None, int]]:
        async def current(conn: AsyncConnection, now: datetime) -> dict[int, DocumentVersion]:
            return await sink_rows.versions_of(conn, tasks)

        versions = await self.ledger.run(current, write=False)
        by_document = {v.document_id: v for v in versions.values()}
        counts = dict.fromkeys(by_document, 0)
        after = (-1, -1)
        while by_document:

            async def page(
                conn: AsyncConnection, now: datetime, after: tuple[int, int] = after
            ) -> list[ChunkRecord]:
                return await sink_rows.chunk_page(conn, list(by_document), after=after, limit=PAGE)

            records = await self.ledger.run(page, write=False)
            points: list[SinkPoint] = []
            for document_id in dict.fromkeys(r.document_id for r in records):
                mine = [r for r in records if r.document_id == document_id]
                points.extend(self.points_of(by_document[document_id], mine))
                counts[document_id] += len(mine)
            if points:
                await self.store(_upsert(points))
            if len(records) < PAGE:
                break
            after = (records[-1].document_id, records[-1].ordinal)
        written: dict[SinkTask, tuple[DocumentVersion | None, int]] = {}
        for task in tasks:
            version = versions.get(task.id)
            count = counts[version.document_id] if version is not None else 0
            await self.store(_tidy(task, version, count))
            written[task] = (version, count)
        return written
