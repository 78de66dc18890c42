"""Reads of the queue as services: batches, documents, attempts, events, monitoring
figures, and the worker processes. Each method is one read-only transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.runner import Runner
from ledger.model import (
    AttemptInfo,
    Batch,
    DocumentInfo,
    Event,
    FailureGroup,
    Page,
    Progress,
    QueueDepth,
    Throughput,
    WorkerInfo,
)
from ledger.monitoring import gauges, stats
from ledger.queue import control, events, progress, throughput, workers
from ledger.states import BatchState, BatchStatus, DocumentStatus, WorkerState


class Reads:
    """What the faces show: every read takes ``owner`` (None: every tenant's)."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def batch(self, batch_id: str, *, owner: str | None = None) -> Batch:
        return await self._db.read(
            lambda conn, now: progress.get_batch(conn, batch_id, owner=owner)
        )

    async def progress(self, batch_id: str, *, owner: str | None = None) -> Progress:
        """The batch's counters, rate and failures, what it waits for, and its sinks."""
        lease_seconds = self._db.settings.lease_seconds
        return await self._db.read(
            lambda conn, now: progress.progress_of(
                conn, batch_id, owner=owner, now=now, lease_seconds=lease_seconds
            )
        )

    async def batches(
        self,
        *,
        owner: str | None = None,
        state: BatchState | None = None,
        status: BatchStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Batch]:
        return await self._db.read(
            lambda conn, now: progress.list_batches(
                conn, owner=owner, state=state, status=status, cursor=cursor, limit=limit
            )
        )

    async def documents(
        self,
        batch_id: str,
        *,
        owner: str | None = None,
        status: DocumentStatus | None = None,
        code: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[DocumentInfo]:
        return await self._db.read(
            lambda conn, now: progress.list_documents(
                conn, batch_id, owner=owner, status=status, code=code, cursor=cursor, limit=limit
            )
        )

    async def document(
        self, document_id: int, *, owner: str | None = None
    ) -> tuple[DocumentInfo, list[AttemptInfo]]:
        return await self._db.read(
            lambda conn, now: progress.get_document(conn, document_id, owner=owner)
        )

    async def failures(self, batch_id: str, *, owner: str | None = None) -> list[FailureGroup]:
        return await self._db.read(lambda conn, now: progress.failures(conn, batch_id, owner=owner))

    async def events(
        self, batch_id: str, *, owner: str | None = None, after_id: int = 0, limit: int = 500
    ) -> list[Event]:
        return await self._db.read(
            lambda conn, now: events.read_events(
                conn, batch_id, owner=owner, after_id=after_id, limit=limit
            )
        )

    async def has_events_after(
        self, batch_id: str, *, owner: str | None = None, after_id: int = 0
    ) -> bool:
        return await self._db.read(
            lambda conn, now: events.has_events_after(
                conn, batch_id, owner=owner, after_id=after_id
            )
        )

    async def throughput(
        self, batch_id: str, *, owner: str | None = None, minutes: int = 60
    ) -> Throughput:
        """The batch's attempts per minute over ``minutes`` minutes (see queue/throughput.py)."""
        return await self._db.read(
            lambda conn, now: throughput.throughput(
                conn, batch_id, owner=owner, now=now, minutes=minutes
            )
        )

    async def queue_depths(
        self, *, owner: str | None = None, limit: int = 1000
    ) -> list[QueueDepth]:
        """Pending and running counts of up to ``limit`` unfinished batches."""
        return await self._db.read(
            lambda conn, now: stats.queue_depths(conn, owner=owner, limit=limit)
        )

    async def document_totals(self, *, owner: str | None = None) -> dict[DocumentStatus, int]:
        """Documents per status over all batches of ``owner`` (all owners: None)."""
        return await self._db.read(lambda conn, now: stats.document_totals(conn, owner=owner))

    async def alert_gauges(
        self, *, limit: int = 1000
    ) -> tuple[list[gauges.BatchGauge], dict[str, int]]:
        """Per unfinished batch (up to ``limit``) and per table figures for alerting (see
        :mod:`ledger.monitoring.gauges`), in one read."""

        async def work(
            conn: AsyncConnection, now: datetime
        ) -> tuple[list[gauges.BatchGauge], dict[str, int]]:
            return await gauges.batch_gauges(conn, now=now, limit=limit), await gauges.table_rows(
                conn
            )

        return await self._db.read(work)


class Workers:
    """Worker processes: their rows, and which processors the live ones can run."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def register(self, *, concurrency: int, processors: Sequence[str] = ()) -> str:
        return await self._db.run(
            lambda conn, now: control.register_worker(
                conn, concurrency=concurrency, now=now, processors=processors
            )
        )

    async def stopped(self, worker_id: str, *, finished: int | None = None) -> None:
        await self._db.run(
            lambda conn, now: control.worker_stopped(conn, worker_id, now=now, finished=finished)
        )

    async def page(
        self,
        *,
        state: WorkerState | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[WorkerInfo]:
        """Worker processes newest first, each with its state derived now (see
        queue/workers.py)."""
        lease_seconds = self._db.settings.lease_seconds
        return await self._db.read(
            lambda conn, now: workers.list_workers(
                conn, now=now, lease_seconds=lease_seconds, state=state, cursor=cursor,
                limit=limit,
            )
        )  # fmt: skip

    async def counts(self) -> dict[WorkerState, int]:
        """How many workers are alive, lost and stopped (for metrics)."""
        lease_seconds = self._db.settings.lease_seconds
        return await self._db.read(
            lambda conn, now: workers.count_by_state(conn, now=now, lease_seconds=lease_seconds)
        )

    async def others_able(self, processor: str, *, exclude: str | None = None) -> int:
        """How many live workers besides ``exclude`` can run ``processor``."""
        lease_seconds = self._db.settings.lease_seconds
        return await self._db.read(
            lambda conn, now: workers.others_able(
                conn, processor, exclude=exclude, now=now, lease_seconds=lease_seconds
            )
        )
