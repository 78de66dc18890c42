"""The queue's work cycle as a service: submit, claim, heartbeat, complete, rescue, and
when work becomes due. Each method is one transaction (or one read) on the runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.db.models import batches, documents
from ledger.db.notify import DueListener
from ledger.db.prepared import inline
from ledger.db.runner import TRANSIENT_RETRIES, Runner, Work
from ledger.model import (
    BatchSpec,
    ClaimedDocument,
    CompleteResult,
    Outcome,
    SourceSpec,
    SubmitResult,
    UnchangedSkip,
)
from ledger.queue import children, claims, creates, finish, rescue, status_reads, submit
from ledger.queue.breaker import BreakerPolicy
from ledger.states import BatchState, DocumentStatus

T = TypeVar("T")

RESCUE_PER_CLAIM = 1_000  # expired leases ended per claim transaction: keeps claims short


def submission(
    db: Runner,
    spec: BatchSpec,
    sources: Iterable[SourceSpec],
    skip_unchanged: UnchangedSkip | None,
    how: Callable[..., Awaitable[T]],
    **extra: Any,
) -> Work[T]:
    """The submission of ``sources`` as a transaction's work (``how``: the submission
    itself, or the plan made from it)."""

    async def work(conn: AsyncConnection, now: datetime) -> T:
        return await how(
            conn,
            spec,
            sources,
            now=now,
            default_max_attempts=db.settings.max_attempts,
            skip_unchanged=skip_unchanged,
            **extra,
        )

    return work


class Queue:
    """Batches and documents moving through their states: the only writer of batches,
    documents and attempts (with :class:`~ledger.queue.batch_service.Control`)."""

    def __init__(self, db: Runner) -> None:
        self._db = db
        settings = db.settings
        self.retry_policy = RetryPolicy(
            base=settings.backoff_base_seconds,
            factor=settings.backoff_factor,
            cap=settings.backoff_cap_seconds,
            jitter=settings.backoff_jitter,
        )
        self.breaker_policy = BreakerPolicy(
            window=settings.breaker_window, threshold=settings.breaker_threshold
        )

    async def submit(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        skip_unchanged: UnchangedSkip | None = None,
    ) -> SubmitResult:
        """Create or extend a batch with its documents, all in one transaction. With
        ``skip_unchanged``, new sources already indexed unchanged are skipped at once."""
        work = submission(self._db, spec, sources, skip_unchanged, submit.submit)
        # A one-shot iterator cannot be replayed: running the transaction again would
        # silently submit nothing, so only a list or tuple of sources is retried.
        replayable = isinstance(sources, list | tuple)
        return await self._db.run(work, retries=TRANSIENT_RETRIES if replayable else 1)

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
        work = submission(self._db, spec, sources, skip_unchanged, submit.submit)
        return await self._db.rolled_back(work)

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
        work = submission(
            self._db, spec, sources, skip_unchanged, creates.create_batch, fingerprint=fingerprint
        )
        try:
            return await self._db.run(work)
        except IntegrityError:
            if spec.id is None:
                raise
            return await self._db.run(work)

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
            return await self._lease(
                conn, now, worker_id, limit, batch_ids, processors, lease_seconds
            )

        return await self._db.run(work, brief=True)

    async def _lease(
        self,
        conn: AsyncConnection,
        now: datetime,
        worker_id: str,
        limit: int,
        batch_ids: Sequence[str] | None,
        processors: Sequence[str] | None,
        lease_seconds: float | None = None,
    ) -> list[ClaimedDocument]:
        return await claims.claim(
            conn,
            worker_id=worker_id,
            limit=limit,
            now=now,
            lease_seconds=lease_seconds or self._db.settings.lease_seconds,
            batch_ids=batch_ids,
            processors=processors,
            rng=self._db.rng,
            rescue_limit=RESCUE_PER_CLAIM,
        )

    async def heartbeat(
        self,
        worker_id: str,
        held: Sequence[tuple[int, str]],
        *,
        lease_seconds: float | None = None,
        finished: int | None = None,
    ) -> list[int]:
        """Extend the worker's leases; returns the ids of documents whose lease it lost."""
        seconds = lease_seconds or self._db.settings.lease_seconds
        return await self._db.run(
            lambda conn, now: claims.heartbeat(
                conn, worker_id=worker_id, held=held, now=now, lease_seconds=seconds,
                finished=finished,
            ),
            brief=True,
        )  # fmt: skip

    async def complete(
        self,
        worker_id: str,
        outcomes: Sequence[Outcome],
        *,
        claim: int = 0,
        batch_ids: Sequence[str] | None = None,
        processors: Sequence[str] | None = None,
    ) -> CompleteResult:
        """Record a group of outcomes in one transaction, each fenced by its lease.

        With ``claim``, the same transaction then leases up to that many due documents, as
        :meth:`claim` does (``result.claimed``): a worker with nothing in flight records its
        finished work before it takes new work, with one commit instead of two. Not when the
        outcomes created child documents (``result.claimed`` is None then, and the caller
        claims on its own): a container's new children are never leased by the transaction
        that created them, so a crash right after it leaves them pending, uncharged.
        """

        async def work(conn: AsyncConnection, now: datetime) -> CompleteResult:
            async def lease() -> list[ClaimedDocument]:
                return await self._lease(conn, now, worker_id, claim, batch_ids, processors)

            return await finish.complete(
                conn, worker_id=worker_id, outcomes=outcomes, now=now, retry=self.retry_policy,
                breaker=self.breaker_policy, rng=self._db.rng,
                throttle_limit=self._db.settings.throttle_limit,
                then_claim=lease if claim > 0 else None,
            )  # fmt: skip

        return await self._db.run(work, brief=_small_to_record(outcomes))

    async def member_holders(self, parent_id: int) -> tuple[str | None, list[str]]:
        """The running attempt's lease token of a container and its children's sources."""
        return await self._db.read(lambda conn, now: children.member_holders(conn, parent_id))

    async def rescue_expired(self) -> int:
        """End every expired lease now (claims also do this, a bounded number at a time)."""
        total = 0
        while True:
            count = await self._db.run(
                lambda conn, now: rescue.rescue_expired(conn, now=now, limit=RESCUE_PER_CLAIM)
            )
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
            return status_reads.aware((await conn.execute(query)).scalar())

        return await self._db.read(work)

    async def earliest_lease_expiry(
        self, batch_ids: Sequence[str] | None = None
    ) -> datetime | None:
        """When the first running lease runs out (None: nothing is running)."""

        async def work(conn: AsyncConnection, now: datetime) -> datetime | None:
            query = select(func.min(documents.c.lease_expires_at)).where(
                documents.c.status == inline(DocumentStatus.RUNNING.value)
            )
            if batch_ids is not None:
                query = query.where(documents.c.batch_id.in_(batch_ids))
            return status_reads.aware((await conn.execute(query)).scalar())

        return await self._db.read(work)

    def due_listener(self, on_due: Callable[[str | None], None]) -> DueListener | None:
        """A listener that calls ``on_due(batch_id)`` when documents become due (after the
        transaction that made them due commits). None on SQLite, which has no such channel:
        there workers rely on their timed poll. Start it with ``await listener.start()``."""
        if not self._db.backend.announces_due_work:
            return None
        return DueListener(self._db.engine, on_due)


# The chunk text a brief finish may index (see Runner.run): a few milliseconds of SQLite.
BRIEF_CHUNK_TEXT = 256 * 1024


def _small_to_record(outcomes: Sequence[Outcome]) -> bool:
    """Whether recording ``outcomes`` is bounded, small work: no child documents (a
    container may have thousands), no staged chunks (moved in one statement, however many),
    and little chunk text in memory."""
    text = 0
    for outcome in outcomes:
        if outcome.children is not None:
            return False
        if outcome.index is not None and outcome.index.spool is not None:
            if outcome.rows is None:
                return False
            text += sum(len(row.text) for row in outcome.rows)
            if text > BRIEF_CHUNK_TEXT:
                return False
    return True
