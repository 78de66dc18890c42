"""Writing one sink's claimed rows: points of several rows go to the store in one upsert.

A store's write has a fixed cost per call (LanceDB commits a new table version per
``merge_insert``; a server answers one request per call), so the rows of a round are
written together: their points are gathered, ``PAGE`` at a time, into one upsert; then
each row's other points are deleted (older versions, or all of a removed source). A
document larger than a page is upserted in pages as it is read. An error fails every row
whose points were in the failed call, and only those; the ledger records each row's
outcome afterwards, so a crash anywhere here leaves every row to be written again.
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

PAGE = 1_000  # points per upsert, and chunks read at a time: bounds a round's memory

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


@dataclass
class _Member:
    task: SinkTask
    version: DocumentVersion | None
    written: int = 0


def _tidy(member: _Member) -> Callable[[Sink], None]:
    """The delete that follows a row's upsert: every point of a removed source; for a new
    version, the source's other points. Generation 1 is the first version the row names,
    so the store holds no other (a row is deleted only once its source's points are gone):
    nothing to delete."""
    task, version = member.task, member.version
    if version is None:
        return lambda s: s.delete(task.source_key)
    if task.generation == 1:
        return lambda s: None
    document, keep = version.document_id, member.written
    return lambda s: s.delete(task.source_key, keep_document=document, keep=keep)


class SinkWriter:
    """Writes one sink's rows of a round (see the module docstring)."""

    def __init__(
        self, ledger: Ledger, sink: str, store: StoreCall, points_of: PointsOf
    ) -> None:
        self.ledger = ledger
        self.sink = sink
        self.store = store
        self.points_of = points_of
        self.outcomes: dict[int, Outcome] = {}
        self._group: list[_Member] = []
        self._buffer: list[SinkPoint] = []

    async def write(self, tasks: Sequence[SinkTask]) -> dict[int, Outcome]:
        """Every row's outcome, by row id."""

        async def current(conn: AsyncConnection, now: datetime) -> dict[int, DocumentVersion]:
            return await sink_rows.versions_of(conn, tasks)

        try:
            versions = await self.ledger.run(current, write=False)
        except Exception as exc:  # the database's: every row is tried again later
            for task in tasks:
                self.outcomes[task.id] = Outcome(error=as_sink_error(self.sink, exc))
            return self.outcomes
        for task in tasks:
            member = _Member(task, versions.get(task.id))
            try:
                self._group.append(member)
                if member.version is not None:
                    await self._gather(member)
                if len(self._buffer) >= PAGE:
                    await self._flush()
            except Exception as exc:  # the store's or the database's: these rows fail
                self._fail(exc, also=member)
        await self._flush_safely()
        return self.outcomes

    async def _gather(self, member: _Member) -> None:
        version = member.version
        assert version is not None
        after = -1
        while True:

            async def page(
                conn: AsyncConnection, now: datetime, after: int = after
            ) -> list[ChunkRecord]:
                document = version.document_id
                return await sink_rows.chunk_page(conn, document, after=after, limit=PAGE)

            records = await self.ledger.run(page, write=False)
            self._buffer.extend(self.points_of(version, records))
            member.written += len(records)
            if len(records) < PAGE:
                return
            after = records[-1].ordinal
            if len(self._buffer) >= PAGE:
                await self._upsert()  # a large document: its pages go as they are read

    async def _upsert(self) -> None:
        points, self._buffer = self._buffer, []
        if points:
            await self.store(lambda s: s.upsert(points))

    async def _flush(self) -> None:
        await self._upsert()
        for member in self._group:
            await self.store(_tidy(member))
        for member in self._group:
            self.outcomes[member.task.id] = Outcome(
                points=member.written, removed=member.version is None
            )
        self._group = []

    async def _flush_safely(self) -> None:
        try:
            await self._flush()
        except Exception as exc:  # the store's: the rows of this group fail
            self._fail(exc)

    def _fail(self, exc: Exception, also: _Member | None = None) -> None:
        members = list(self._group)
        if also is not None and also not in members:
            members.append(also)
        for member in members:
            self.outcomes[member.task.id] = Outcome(error=as_sink_error(self.sink, exc))
        self._group, self._buffer = [], []
