"""The one object every face of the project uses to talk to the ledger database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger.access import keys
from ledger.backoff import RetryPolicy
from ledger.db import dialect
from ledger.db.engine import WRITE, create_engine
from ledger.db.models import HEAD_REVISION, batches, documents
from ledger.db.notify import DueListener
from ledger.db.server_clock import ServerClock
from ledger.errors import InvalidInput, LedgerError
from ledger.index import chunk_reads, sink_rows, vectors
from ledger.index import chunks as index
from ledger.index import plan as plan_core
from ledger.index import search as search_core
from ledger.index.chunk_reads import ChunkRecord
from ledger.monitoring import gauges, stats
from ledger.queue import claims, control, creates, deletion, progress, submit, throughput
from ledger.queue import events as event_log
from ledger.queue import workers as workers_core
from ledger.queue.batch_edits import BatchChanges, update_batch
from ledger.queue.claims import BreakerPolicy
from ledger.records import (
    ApiKey,
    AttemptInfo,
    Batch,
    BatchSpec,
    ClaimedDocument,
    CompleteResult,
    DocumentInfo,
    Event,
    FailureGroup,
    IndexedDocument,
    KeyHolder,
    Outcome,
    Page,
    Plan,
    Progress,
    QueueDepth,
    SearchHit,
    SinkProgress,
    SourceSpec,
    SubmitResult,
    Throughput,
    TransactionalWrite,
    UnchangedSkip,
    Upload,
    UploadSpec,
    WorkerInfo,
)
from ledger.settings import Settings
from ledger.states import BatchState, BatchStatus, DocumentStatus, WorkerState
from ledger.uploads import state as uploads

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
Work = Callable[[AsyncConnection, datetime], Awaitable[T]]

RESCUE_PER_CLAIM = 1_000  # expired leases ended per claim transaction: keeps claims short
TRANSIENT_RETRIES = 5


class _RolledBack(Exception):
    """Raised to end a transaction whose writes must not be kept."""


class SchemaOutOfDate(LedgerError):
    """The database schema is not at the version this code needs: run `ledger db upgrade`."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _is_transient(exc: DBAPIError) -> bool:
    """Errors after which running the same transaction again is the right thing to do."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in ("40001", "40P01"):  # serialization failure, deadlock detected
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message


class Ledger:
    """Batches and documents in the database, and every transition between their states.

    Each public coroutine is one committed transaction (or one read). Nothing that matters
    is kept in this object: any number of them, in any number of processes, can share a
    database, and any of them can die at any moment.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self._clock = clock
        self._server_clock = ServerClock()
        self._rng = rng or random.Random()
        self.retry_policy = RetryPolicy(
            base=settings.backoff_base_seconds,
            factor=settings.backoff_factor,
            cap=settings.backoff_cap_seconds,
            jitter=settings.backoff_jitter,
        )
        self.breaker_policy = BreakerPolicy(
            window=settings.breaker_window, threshold=settings.breaker_threshold
        )
        # SQLite has one writer at a time. Two connections of this process that both want
        # to write would otherwise meet in SQLite's busy handler, which sleeps (1, 2, 5, 10
        # ... ms) and polls: under a steady claim/complete load most of the time went there.
        # Queueing this process's write transactions here hands the lock over at once;
        # other processes still queue on busy_timeout.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if dialect.has_single_writer(engine) else None
        )

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        migrate: bool = False,
        clock: Clock | None = None,
        **engine_kwargs: Any,
    ) -> Ledger:
        """Connect to the configured database, migrating it first if ``migrate``.

        Without ``migrate`` the schema must already be at the current version.
        """
        settings = settings or Settings()
        if migrate:
            from ledger.db import migrate as migrations

            await migrations.upgrade_async(settings.url)
        engine = create_engine(settings, **engine_kwargs)
        ledger = cls(engine, settings, clock=clock)
        try:
            await ledger.check_schema()
        except BaseException:
            await engine.dispose()
            raise
        return ledger

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the database is at the head revision."""
        head = HEAD_REVISION
        try:
            async with self.engine.connect() as conn:
                current = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
        except DBAPIError:
            current = None
        if current != head:
            raise SchemaOutOfDate(
                f"database schema is at {current or 'nothing'}, this version needs {head}: "
                "run `ledger db upgrade`"
            )

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ transactions

    async def now(self, conn: AsyncConnection | None = None) -> datetime:
        """The ledger's clock. Lease expiry is judged by this one clock: the database server's
        on PostgreSQL (workers on many machines agree on it), the local clock on SQLite (only
        processes on the machine that holds the file can write it), or a test's clock."""
        if self._clock is not None:
            return self._clock()
        if conn is not None:
            return await self._server_clock.now(conn)
        return utcnow()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[AsyncConnection]:
        """A transaction for composing several core calls; commits when the block ends.

        Prefer the methods below; this is for callers that must add their own core writes to
        the same transaction (a tus upload completing into a batch, for example).
        """
        async with contextlib.AsyncExitStack() as stack:
            if write and self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            conn = await stack.enter_async_context(self.engine.connect())
            if write:
                conn = await conn.execution_options(**{WRITE: True})
            async with conn.begin():
                yield conn

    async def run(
        self, work: Work[T], *, write: bool = True, retries: int = TRANSIENT_RETRIES
    ) -> T:
        """Run ``work(conn, now)`` in one transaction, again if the database says to retry
        (at most ``retries`` runs in all: 1 for work that cannot be repeated)."""
        for attempt in range(retries):
            try:
                async with self.transaction(write=write) as conn:
                    return await work(conn, await self.now(conn))
            except DBAPIError as exc:
                if not _is_transient(exc) or attempt == retries - 1:
                    raise
                log.warning("transient database error, retrying: %s", exc.orig)
                await asyncio.sleep(0.05 * 2**attempt * (1 + self._rng.random()))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ submit

    async def submit(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        skip_unchanged: UnchangedSkip | None = None,
    ) -> SubmitResult:
        """Create or extend a batch with its documents, all in one transaction. With
        ``skip_unchanged``, new sources already indexed unchanged are skipped at once."""

        work = self._submission(spec, sources, skip_unchanged, submit.submit)
        # A one-shot iterator cannot be replayed: running the transaction again would
        # silently submit nothing, so only a list or tuple of sources is retried.
        replayable = isinstance(sources, list | tuple)
        return await self.run(work, retries=TRANSIENT_RETRIES if replayable else 1)

    async def submit_preview(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        skip_unchanged: UnchangedSkip | None = None,
    ) -> SubmitResult:
        """What :meth:`submit` would do with these sources, decided by the same code (so a
        dry run and the real run agree on what is new, changed and unchanged), in a
        transaction that is then rolled back: the database is left as it was."""

        work = self._submission(spec, sources, skip_unchanged, submit.submit)
        return await self._rolled_back(work)

    def _submission(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        skip_unchanged: UnchangedSkip | None,
        how: Callable[..., Awaitable[T]],
        **extra: Any,
    ) -> Callable[[AsyncConnection, datetime], Awaitable[T]]:
        """The submission of ``sources`` as a transaction's work (``how``: the submission
        itself, or the plan made from it)."""

        async def work(conn: AsyncConnection, now: datetime) -> T:
            return await how(
                conn,
                spec,
                sources,
                now=now,
                default_max_attempts=self.settings.max_attempts,
                skip_unchanged=skip_unchanged,
                **extra,
            )

        return work

    async def _rolled_back(self, work: Callable[[AsyncConnection, datetime], Awaitable[T]]) -> T:
        """``work`` in a write transaction that is then rolled back, whatever it did; one
        attempt only (no transparent retry): its sources may be a one-shot iterator."""
        result: list[T] = []
        with contextlib.suppress(_RolledBack):
            async with self.transaction() as conn:
                result.append(await work(conn, await self.now(conn)))
                raise _RolledBack  # leaving the transaction by an exception rolls it back
        return result[0]

    # ------------------------------------------------------------------ workers

    async def register_worker(self, *, concurrency: int, processors: Sequence[str] = ()) -> str:
        async def work(conn: AsyncConnection, now: datetime) -> str:
            return await control.register_worker(
                conn, concurrency=concurrency, now=now, processors=processors
            )

        return await self.run(work)

    async def worker_stopped(self, worker_id: str, *, finished: int | None = None) -> None:
        async def work(conn: AsyncConnection, now: datetime) -> None:
            await control.worker_stopped(conn, worker_id, now=now, finished=finished)

        await self.run(work)

    async def workers(
        self,
        *,
        state: WorkerState | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[WorkerInfo]:
        """Worker processes newest first, each with its state derived now (see core/workers)."""

        async def work(conn: AsyncConnection, now: datetime) -> Page[WorkerInfo]:
            return await workers_core.list_workers(
                conn,
                now=now,
                lease_seconds=self.settings.lease_seconds,
                state=state,
                cursor=cursor,
                limit=limit,
            )

        return await self.run(work, write=False)

    async def worker_counts(self) -> dict[WorkerState, int]:
        """How many workers are alive, lost and stopped (for metrics)."""

        async def work(conn: AsyncConnection, now: datetime) -> dict[WorkerState, int]:
            return await workers_core.count_by_state(
                conn, now=now, lease_seconds=self.settings.lease_seconds
            )

        return await self.run(work, write=False)

    async def others_able(self, processor: str, *, exclude: str | None = None) -> int:
        """How many live workers besides ``exclude`` can run ``processor``."""

        async def work(conn: AsyncConnection, now: datetime) -> int:
            return await workers_core.others_able(
                conn,
                processor,
                exclude=exclude,
                now=now,
                lease_seconds=self.settings.lease_seconds,
            )

        return await self.run(work, write=False)

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        batch_ids: Sequence[str] | None = None,
        lease_seconds: float | None = None,
        processors: Sequence[str] | None = None,
    ) -> list[ClaimedDocument]:
        """Rescue expired leases, then lease up to ``limit`` due documents to the worker
        (only of batches whose processor is in ``processors``, when given)."""

        async def work(conn: AsyncConnection, now: datetime) -> list[ClaimedDocument]:
            await claims.rescue_expired(conn, now=now, limit=RESCUE_PER_CLAIM)
            return await claims.claim(
                conn,
                worker_id=worker_id,
                limit=limit,
                now=now,
                lease_seconds=lease_seconds or self.settings.lease_seconds,
                batch_ids=batch_ids,
                processors=processors,
                rng=self._rng,
            )

        return await self.run(work)

    async def heartbeat(
        self,
        worker_id: str,
        held: Sequence[tuple[int, str]],
        *,
        lease_seconds: float | None = None,
        finished: int | None = None,
    ) -> list[int]:
        """Extend the worker's leases; returns the ids of documents whose lease it lost."""

        async def work(conn: AsyncConnection, now: datetime) -> list[int]:
            return await claims.heartbeat(
                conn,
                worker_id=worker_id,
                held=held,
                now=now,
                lease_seconds=lease_seconds or self.settings.lease_seconds,
                finished=finished,
            )

        return await self.run(work)

    async def complete(self, worker_id: str, outcomes: Sequence[Outcome]) -> CompleteResult:
        """Record a group of outcomes in one transaction, each fenced by its lease."""

        async def work(conn: AsyncConnection, now: datetime) -> CompleteResult:
            return await claims.complete(
                conn,
                worker_id=worker_id,
                outcomes=outcomes,
                now=now,
                retry=self.retry_policy,
                breaker=self.breaker_policy,
                rng=self._rng,
                throttle_limit=self.settings.throttle_limit,
            )

        return await self.run(work)

    async def rescue_expired(self) -> int:
        """End every expired lease now (claims also do this, a bounded number at a time)."""
        total = 0
        while True:

            async def work(conn: AsyncConnection, now: datetime) -> int:
                return await claims.rescue_expired(conn, now=now, limit=RESCUE_PER_CLAIM)

            count = await self.run(work)
            total += count
            if count < RESCUE_PER_CLAIM:
                return total

    async def next_due_at(
        self, batch_ids: Sequence[str] | None = None, *, processors: Sequence[str] | None = None
    ) -> datetime | None:
        """When the earliest pending document of an active batch becomes due (None: none);
        with ``processors``, of a batch one of them runs."""

        async def work(conn: AsyncConnection, now: datetime) -> datetime | None:
            query = (
                select(func.min(documents.c.next_attempt_at))
                .join(batches, batches.c.id == documents.c.batch_id)
                .where(
                    documents.c.status == DocumentStatus.PENDING.value,
                    batches.c.state == BatchState.ACTIVE.value,
                    batches.c.n_pending > 0,
                )
            )
            if batch_ids is not None:
                query = query.where(documents.c.batch_id.in_(batch_ids))
            if processors is not None:
                query = query.where(batches.c.processor.in_(list(processors)))
            return progress._aware((await conn.execute(query)).scalar())

        return await self.run(work, write=False)

    async def earliest_lease_expiry(
        self, batch_ids: Sequence[str] | None = None
    ) -> datetime | None:
        """When the first running lease runs out (None: nothing is running)."""

        async def work(conn: AsyncConnection, now: datetime) -> datetime | None:
            query = select(func.min(documents.c.lease_expires_at)).where(
                documents.c.status == DocumentStatus.RUNNING.value
            )
            if batch_ids is not None:
                query = query.where(documents.c.batch_id.in_(batch_ids))
            return progress._aware((await conn.execute(query)).scalar())

        return await self.run(work, write=False)

    def due_listener(self, on_due: Callable[[str | None], None]) -> DueListener | None:
        """A listener that calls ``on_due(batch_id)`` when documents become due (after the
        transaction that made them due commits). None on SQLite, which has no such channel:
        there workers rely on their timed poll. Start it with ``await listener.start()``."""
        if not DueListener.supported(self.engine):
            return None
        return DueListener(self.engine, on_due)

    # ------------------------------------------------------------------ control

    async def pause(
        self, batch_id: str, *, owner: str | None = None, reason: str | None = None
    ) -> Batch:
        async def work(conn: AsyncConnection, now: datetime) -> Batch:
            return await control.pause(conn, batch_id, owner=owner, reason=reason, now=now)

        return await self.run(work)

    async def update_batch(
        self, batch_id: str, changes: BatchChanges, *, owner: str | None = None
    ) -> Batch:
        """Change a batch's name, priority or max_attempts (see queue/batch_edits.py)."""

        async def work(conn: AsyncConnection, now: datetime) -> Batch:
            return await update_batch(conn, batch_id, changes, owner=owner, now=now)

        return await self.run(work)

    async def resume(self, batch_id: str, *, owner: str | None = None) -> Batch:
        async def work(conn: AsyncConnection, now: datetime) -> Batch:
            return await control.resume(conn, batch_id, owner=owner, now=now)

        return await self.run(work)

    async def cancel(self, batch_id: str, *, owner: str | None = None) -> Batch:
        async def work(conn: AsyncConnection, now: datetime) -> Batch:
            return await control.cancel(conn, batch_id, owner=owner, now=now)

        return await self.run(work)

    async def retry_failed(
        self, batch_id: str, *, owner: str | None = None, code: str | None = None
    ) -> int:
        async def work(conn: AsyncConnection, now: datetime) -> int:
            return await control.retry_failed(conn, batch_id, owner=owner, code=code, now=now)

        return await self.run(work)

    async def delete_batch(
        self,
        batch_id: str,
        *,
        owner: str | None = None,
        force: bool = False,
        on_step: deletion.Progress | None = None,
    ) -> deletion.DeletionReport:
        """Delete the batch, its rows and stored files in bounded steps (resumable)."""
        return await deletion.delete_batch(
            self,
            batch_id,
            owner=owner,
            force=force,
            step_rows=self.settings.delete_step_rows,
            on_step=on_step,
        )

    async def unfinished_deletions(self, *, owner: str | None = None) -> list[str]:
        """Batches whose deletion started and was interrupted (finish with delete_batch)."""

        async def work(conn: AsyncConnection, now: datetime) -> list[str]:
            return await deletion.unfinished(conn, owner=owner)

        return await self.run(work, write=False)

    # ------------------------------------------------------------------ reads

    async def batch(self, batch_id: str, *, owner: str | None = None) -> Batch:
        async def work(conn: AsyncConnection, now: datetime) -> Batch:
            return await progress.get_batch(conn, batch_id, owner=owner)

        return await self.run(work, write=False)

    async def progress(self, batch_id: str, *, owner: str | None = None) -> Progress:
        async def work(conn: AsyncConnection, now: datetime) -> Progress:
            found = await progress.progress(conn, batch_id, owner=owner, now=now)
            waiting = await workers_core.waiting_for_processor(
                conn, found.batch, now=now, lease_seconds=self.settings.lease_seconds
            )
            sinks = (await sink_rows.progress(conn, [batch_id])).get(batch_id, {})
            return replace(found, waiting_for_processor=waiting, sinks=sinks)

        return await self.run(work, write=False)

    async def batches(
        self,
        *,
        owner: str | None = None,
        state: BatchState | None = None,
        status: BatchStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Batch]:
        async def work(conn: AsyncConnection, now: datetime) -> Page[Batch]:
            return await progress.list_batches(
                conn, owner=owner, state=state, status=status, cursor=cursor, limit=limit
            )

        return await self.run(work, write=False)

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
        async def work(conn: AsyncConnection, now: datetime) -> Page[DocumentInfo]:
            return await progress.list_documents(
                conn, batch_id, owner=owner, status=status, code=code, cursor=cursor, limit=limit
            )

        return await self.run(work, write=False)

    async def document(
        self, document_id: int, *, owner: str | None = None
    ) -> tuple[DocumentInfo, list[AttemptInfo]]:
        async def work(
            conn: AsyncConnection, now: datetime
        ) -> tuple[DocumentInfo, list[AttemptInfo]]:
            return await progress.get_document(conn, document_id, owner=owner)

        return await self.run(work, write=False)

    async def batch_chunks(
        self,
        batch_id: str,
        *,
        owner: str | None = None,
        after: int = 0,
        limit: int = 500,
        vectors: bool = False,
        model: str | None = None,
    ) -> list[ChunkRecord]:
        """A page of a batch's chunks after chunk id ``after`` (see index/chunk_reads.py)."""

        async def work(conn: AsyncConnection, now: datetime) -> list[ChunkRecord]:
            return await chunk_reads.batch_chunks(
                conn, batch_id, owner=owner, after=after, limit=limit, vectors=vectors,
                model=model,
            )  # fmt: skip

        return await self.run(work, write=False)

    async def document_chunks(
        self,
        batch_id: str,
        document_id: int,
        *,
        owner: str | None = None,
        after: int = -1,
        limit: int = 100,
    ) -> list[ChunkRecord]:
        """A page of one document's chunks after ordinal ``after`` (index/chunk_reads.py)."""

        async def work(conn: AsyncConnection, now: datetime) -> list[ChunkRecord]:
            return await chunk_reads.document_chunks(
                conn, batch_id, document_id, owner=owner, after=after, limit=limit
            )

        return await self.run(work, write=False)

    async def failures(self, batch_id: str, *, owner: str | None = None) -> list[FailureGroup]:
        async def work(conn: AsyncConnection, now: datetime) -> list[FailureGroup]:
            return await progress.failures(conn, batch_id, owner=owner)

        return await self.run(work, write=False)

    async def events(
        self, batch_id: str, *, owner: str | None = None, after_id: int = 0, limit: int = 500
    ) -> list[Event]:
        async def work(conn: AsyncConnection, now: datetime) -> list[Event]:
            return await event_log.read_events(
                conn, batch_id, owner=owner, after_id=after_id, limit=limit
            )

        return await self.run(work, write=False)

    async def has_events_after(
        self, batch_id: str, *, owner: str | None = None, after_id: int = 0
    ) -> bool:
        async def work(conn: AsyncConnection, now: datetime) -> bool:
            return await event_log.has_events_after(conn, batch_id, owner=owner, after_id=after_id)

        return await self.run(work, write=False)

    # ================================================================== API support
    # Operations the HTTP API needs: API keys (tenants), idempotent creation, monitoring.

    async def create_key(self, tenant: str, *, role: str = "tenant") -> tuple[str, str]:
        """Make an API key acting as ``tenant`` (role 'tenant' or 'operator'): returns
        (key id, key), the key shown once."""

        async def work(conn: AsyncConnection, now: datetime) -> tuple[str, str]:
            return await keys.create_key(conn, tenant, now=now, role=role)

        return await self.run(work)

    async def list_keys(self) -> list[ApiKey]:
        """Every API key (revoked ones too), without the keys themselves."""

        async def work(conn: AsyncConnection, now: datetime) -> list[ApiKey]:
            return await keys.list_keys(conn)

        return await self.run(work, write=False)

    async def revoke_key(self, key_id: str) -> None:
        """Revoke an API key at once; :class:`NotFound` for an unknown id."""

        async def work(conn: AsyncConnection, now: datetime) -> None:
            await keys.revoke_key(conn, key_id, now=now)

        await self.run(work)

    async def authenticate(self, plaintext: str) -> str | None:
        """The tenant an API key acts as, or None when it is unknown, revoked or malformed."""

        async def work(conn: AsyncConnection, now: datetime) -> str | None:
            return await keys.authenticate(conn, plaintext)

        return await self.run(work, write=False)

    async def identify_key(self, plaintext: str) -> KeyHolder | None:
        """Who an API key is (id, tenant, role); None when unknown, revoked or malformed."""

        async def work(conn: AsyncConnection, now: datetime) -> KeyHolder | None:
            return await keys.identify(conn, plaintext)

        return await self.run(work, write=False)

    async def any_keys(self) -> bool:
        """Whether any API key was ever created here (revoked ones included)."""

        async def work(conn: AsyncConnection, now: datetime) -> bool:
            return await keys.any_keys(conn)

        return await self.run(work, write=False)

    async def create_batch(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        fingerprint: str,
        skip_unchanged: UnchangedSkip | None = None,
    ) -> SubmitResult:
        """Create a batch for a request that may be resent (see :mod:`ledger.queue.creates`).

        Concurrent identical requests converge on one batch: on PostgreSQL the losers of the
        insert race run again and find the winner's batch. ``sources`` is iterated again in
        that case, so pass a re-iterable (a list, or an object whose ``__iter__`` restarts).
        """

        async def work(conn: AsyncConnection, now: datetime) -> SubmitResult:
            return await creates.create_batch(
                conn,
                spec,
                sources,
                fingerprint=fingerprint,
                now=now,
                default_max_attempts=self.settings.max_attempts,
                skip_unchanged=skip_unchanged,
            )

        try:
            return await self.run(work)
        except IntegrityError:
            if spec.id is None:
                raise
            return await self.run(work)

    async def queue_depths(
        self, *, owner: str | None = None, limit: int = 1000
    ) -> list[QueueDepth]:
        """Pending and running counts of up to ``limit`` unfinished batches."""

        async def work(conn: AsyncConnection, now: datetime) -> list[QueueDepth]:
            return await stats.queue_depths(conn, owner=owner, limit=limit)

        return await self.run(work, write=False)

    async def document_totals(self, *, owner: str | None = None) -> dict[DocumentStatus, int]:
        """Documents per status over all batches of ``owner`` (all owners: None)."""

        async def work(conn: AsyncConnection, now: datetime) -> dict[DocumentStatus, int]:
            return await stats.document_totals(conn, owner=owner)

        return await self.run(work, write=False)

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

        return await self.run(work, write=False)

    async def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    # ================================================================== dashboard support
    # Reads the web dashboard needs beyond the ones above (bounded, tenant-scoped).

    async def throughput(
        self, batch_id: str, *, owner: str | None = None, minutes: int = 60
    ) -> Throughput:
        """The batch's attempts per minute over ``minutes`` minutes (see core.throughput)."""

        async def work(conn: AsyncConnection, now: datetime) -> Throughput:
            return await throughput.throughput(
                conn, batch_id, owner=owner, now=now, minutes=minutes
            )

        return await self.run(work, write=False)

    # ================================================================== tus uploads
    # Resumable uploads (the tus protocol face): one row per upload, see uploads/state.py.
    # Every method is one transaction; the writer's token fences the ones that move bytes.

    async def create_upload(
        self,
        spec: UploadSpec,
        *,
        folder: Path,
        writer_token: str | None = None,
    ) -> Upload:
        """A new upload whose bytes will go to a file in ``folder``; held by
        ``writer_token`` when given (creation with the first bytes)."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.create(
                conn,
                spec,
                folder=folder,
                now=now,
                expiry_seconds=self.settings.tus_expiry_seconds,
                writer_token=writer_token,
                lease_seconds=self.settings.tus_lease_seconds,
                quota_bytes=self.settings.tenant_upload_quota_bytes,
                max_upload_bytes=self.settings.tus_max_bytes,
                default_max_attempts=self.settings.max_attempts,
            )

        try:
            return await self.run(work)
        except IntegrityError:
            # Another transaction created the batch meanwhile: run again to find whose it is.
            return await self.run(work)

    async def upload(self, upload_id: str, *, owner: str | None = None) -> Upload:
        """The upload (NotFound when missing, another tenant's or terminated; Gone when
        expired)."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.get(conn, upload_id, owner=owner, now=now)

        return await self.run(work, write=False)

    async def acquire_upload(
        self,
        upload_id: str,
        token: str,
        *,
        owner: str | None = None,
        length: int | None = None,
        take_over: bool = False,
    ) -> Upload:
        """Take the upload's writer lease (see :func:`ledger.uploads.state.acquire`)."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.acquire(
                conn,
                upload_id,
                owner=owner,
                token=token,
                now=now,
                lease_seconds=self.settings.tus_lease_seconds,
                length=length,
                take_over=take_over,
            )

        return await self.run(work)

    async def renew_upload(
        self, upload_id: str, token: str, *, offset: int | None = None
    ) -> Upload:
        """Extend the writer's lease, recording ``offset`` durable bytes when given;
        LeaseLost when the token no longer holds the upload."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.renew(
                conn,
                upload_id,
                token=token,
                now=now,
                lease_seconds=self.settings.tus_lease_seconds,
                offset=offset,
                expiry_seconds=self.settings.tus_expiry_seconds if offset is not None else None,
            )

        return await self.run(work)

    async def commit_upload(self, upload_id: str, token: str, *, offset: int) -> Upload:
        """Record ``offset`` durable bytes and give the lease up (fenced by ``token``)."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.commit(
                conn,
                upload_id,
                token=token,
                offset=offset,
                now=now,
                expiry_seconds=self.settings.tus_expiry_seconds,
            )

        return await self.run(work)

    async def release_upload(self, upload_id: str, token: str) -> None:
        """Give the writer lease up, changing nothing else."""

        async def work(conn: AsyncConnection, now: datetime) -> None:
            await uploads.release(conn, upload_id, token=token, now=now)

        await self.run(work)

    async def complete_upload(
        self,
        upload_id: str,
        token: str,
        *,
        sha256: str,
        size: int,
        mtime_ns: int | None,
        stored_as: tuple[str, str] | None = None,
    ) -> Upload:
        """Count the last bytes, mark the upload complete and create its document (and its
        batch if needed) in one transaction; exactly once, fenced by ``token``. With
        ``stored_as`` (object URL, ETag) the document names that object."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.complete(
                conn,
                upload_id,
                token=token,
                sha256=sha256,
                size=size,
                mtime_ns=mtime_ns,
                now=now,
                default_max_attempts=self.settings.max_attempts,
                stored_as=stored_as,
            )

        return await self.run(work)

    async def terminate_upload(self, upload_id: str, *, owner: str | None = None) -> Upload:
        """End an unfinished upload (Conflict for a complete one)."""

        async def work(conn: AsyncConnection, now: datetime) -> Upload:
            return await uploads.terminate(conn, upload_id, owner=owner, now=now)

        return await self.run(work)

    async def expire_uploads(self, *, limit: int = 1000) -> int:
        """Mark unfinished uploads past their expiry expired (those nobody is writing)."""

        async def work(conn: AsyncConnection, now: datetime) -> int:
            return await uploads.expire(conn, now=now, limit=limit)

        return await self.run(work)

    async def upload_files_to_remove(
        self, *, limit: int = 500, upload_id: str | None = None
    ) -> list[tuple[str, str]]:
        """(id, path) of terminated or expired uploads whose file may now be removed."""

        async def work(conn: AsyncConnection, now: datetime) -> list[tuple[str, str]]:
            return await uploads.files_to_remove(conn, now=now, limit=limit, upload_id=upload_id)

        return await self.run(work, write=False)

    async def upload_files_removed(self, ids: Sequence[str]) -> None:
        """Record that these ended uploads' files are gone."""

        async def work(conn: AsyncConnection, now: datetime) -> None:
            await uploads.files_removed(conn, ids, now=now)

        await self.run(work)

    # ================================================================== chunk index
    # Chunks, the dedup ledger, search and the dry-run plan (ledger.index.chunks and
    # ledger.index.search; rules in docs/ingest.md).

    async def indexed_source(
        self,
        batch_id: str,
        source: str,
        *,
        exclude_id: int | None = None,
        model: str | None = None,
    ) -> IndexedDocument | None:
        """The document holding the chunks of ``source`` for the owner of ``batch_id``."""

        async def work(conn: AsyncConnection, now: datetime) -> IndexedDocument | None:
            return await index.indexed_source(
                conn, batch_id=batch_id, source=source, exclude_id=exclude_id, model=model
            )

        return await self.run(work, write=False)

    async def indexed_content(
        self,
        batch_id: str,
        sha256: str,
        *,
        exclude_id: int | None = None,
        model: str | None = None,
    ) -> IndexedDocument | None:
        """A document of the owner of ``batch_id`` holding chunks of content ``sha256``."""

        async def work(conn: AsyncConnection, now: datetime) -> IndexedDocument | None:
            return await index.indexed_content(
                conn, batch_id=batch_id, sha256=sha256, exclude_id=exclude_id, model=model
            )

        return await self.run(work, write=False)

    def chunks_write(
        self,
        doc: ClaimedDocument,
        *,
        sha256: str,
        size: int | None,
        mtime_ns: int | None,
        expected: int,
        chunks: Callable[[], AsyncIterator[Sequence[index.ChunkData]]],
        on_stored: Callable[[float], None] | None = None,
        model: str | None = None,
        sinks: Sequence[str] = (),
    ) -> TransactionalWrite:
        """The write that stores a document's chunks with its outcome (``Done.write``).

        ``chunks()`` is called afresh each time the write runs (a transaction may be run
        again), and must yield the chunks ``0..expected-1`` in order. ``on_stored`` gets the
        seconds the store took. With ``model``, every chunk's vector is stored too, from the
        embedding cache (see :meth:`cache_vectors`); one missing fails the transaction.
        Each of ``sinks`` (profile names) is told to mirror this version of the source.
        """

        async def write(conn: AsyncConnection) -> None:
            started = asyncio.get_running_loop().time()
            await index.store_chunks(
                conn,
                document_id=doc.id,
                batch_id=doc.batch_id,
                source=doc.source,
                sha256=sha256,
                size=size,
                mtime_ns=mtime_ns,
                expected=expected,
                batches_of_chunks=chunks(),
                now=await self.now(conn),
                model=model,
                sinks=sinks,
            )
            if on_stored is not None:
                on_stored(asyncio.get_running_loop().time() - started)

        return write

    def content_write(
        self,
        doc: ClaimedDocument,
        *,
        sha256: str,
        size: int | None = None,
        mtime_ns: int | None = None,
        supersede: bool = False,
    ) -> TransactionalWrite:
        """The write that records a skipped document's content hash; with ``supersede``,
        the older documents of its source lose their chunks (its content is indexed
        elsewhere now)."""

        async def write(conn: AsyncConnection) -> None:
            await index.record_content(
                conn,
                document_id=doc.id,
                batch_id=doc.batch_id,
                source=doc.source,
                sha256=sha256,
                size=size,
                mtime_ns=mtime_ns,
                supersede=supersede,
                now=await self.now(conn),
            )

        return write

    async def sink_progress(self, batch_ids: Sequence[str]) -> dict[str, dict[str, SinkProgress]]:
        """Per batch, per sink profile: documents whose version is pending, done or failed
        in the store, and the latest error (``ledger.index.sink_rows``)."""

        async def work(conn: AsyncConnection, now: datetime) -> dict[str, dict[str, SinkProgress]]:
            return await sink_rows.progress(conn, batch_ids)

        return await self.run(work, write=False)

    async def search(
        self,
        query: str,
        k: int = 10,
        *,
        owner: str | None = None,
        batch_id: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query`` (BM25 on SQLite, ``ts_rank_cd`` on
        PostgreSQL), within ``owner``'s batches or one batch. Raises ``InvalidInput`` for a
        query with nothing to search for."""

        async def work(conn: AsyncConnection, now: datetime) -> list[SearchHit]:
            return await search_core.search(conn, query, k=k, owner=owner, batch_id=batch_id)

        return await self.run(work, write=False)

    async def plan(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        skip_unchanged: UnchangedSkip | None = None,
        roots: Sequence[str] | None = None,
        listed: int = 1_000,
    ) -> Plan:
        """Dry run of a submission: which sources are new, changed or unchanged, decided by
        the real submission with ``skip_unchanged`` (as :meth:`submit` is given it) in a
        transaction that is rolled back, and which indexed ones are gone (under ``roots``,
        or from the batch ``spec.id``). Lists at most ``listed`` sources per group."""

        work = self._submission(
            spec, sources, skip_unchanged, plan_core.plan, roots=roots, listed=listed
        )
        return await self._rolled_back(work)

    # ================================================================== embeddings
    # The embedding cache, vector search and its model (ledger.index.vectors; rules in
    # docs/ingest.md, "Embeddings"). Vectors of chunks are stored by ``chunks_write``.

    async def cached_keys(self, model: str, keys: Sequence[str]) -> set[str]:
        """Which text hashes of ``keys`` already have a ``model`` vector in the cache."""

        async def work(conn: AsyncConnection, now: datetime) -> set[str]:
            return await vectors.cached_keys(conn, model, keys)

        return await self.run(work, write=False)

    async def cache_vectors(self, model: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Commit (text hash, vector bytes) pairs to the embedding cache now, in a
        transaction of their own, so they are never computed again whatever happens next.
        Vector bytes come from :func:`ledger.index.vectors.to_bytes`."""

        async def work(conn: AsyncConnection, now: datetime) -> None:
            await vectors.cache_vectors(conn, model=model, items=items, now=now)

        await self.run(work)

    async def vector_model(
        self,
        *,
        owner: str | None = None,
        batch_id: str | None = None,
        model: str | None = None,
    ) -> tuple[str, str | dict[str, Any]] | None:
        """The model to search with, and the embedder option of a batch that used it: the
        model of the most recently stored vector in scope (or ``model``, if it has vectors
        in scope). None when there are none."""

        async def work(
            conn: AsyncConnection, now: datetime
        ) -> tuple[str, str | dict[str, Any]] | None:
            return await vectors.latest_model(conn, owner=owner, batch_id=batch_id, model=model)

        return await self.run(work, write=False)

    async def search_vectors(
        self,
        vector: Sequence[float] | Any,
        *,
        model: str,
        k: int = 10,
        owner: str | None = None,
        batch_id: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks whose ``model`` vectors are nearest to ``vector`` (cosine, brute
        force in blocks of 10,000), best first; ``score`` is the cosine similarity."""
        if not 1 <= k <= search_core.MAX_K:
            raise InvalidInput(f"k must be from 1 to {search_core.MAX_K}")

        async def work(conn: AsyncConnection, now: datetime) -> list[SearchHit]:
            return await vectors.nearest(
                conn, vector, model=model, k=k, owner=owner, batch_id=batch_id
            )

        return await self.run(work, write=False)
