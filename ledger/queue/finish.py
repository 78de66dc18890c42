"""The finish: record how a worker's attempts ended, fenced by their lease tokens.

A group of outcomes is recorded in one transaction with everything the documents produced
(their chunks, their children), then the breaker is checked, new work may be leased, and
the batches' completion is checked.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.db import direct
from ledger.db.backends import backend_of
from ledger.db.models import LEASED, batches, documents
from ledger.db.prepared import prepared
from ledger.index import outcome_store
from ledger.model import ClaimedDocument, CompleteResult, Outcome
from ledger.queue.breaker import BreakerPolicy, check_breaker
from ledger.queue.children import replace_children
from ledger.queue.endings import Ending, mark_completed, write_endings
from ledger.queue.throttles import past_limit_message, throttle_delay, throttle_runs
from ledger.states import AttemptOutcome, BatchState, DocumentStatus, ErrorCode
from ledger.wording import plural


async def complete(
    conn: AsyncConnection,
    *,
    worker_id: str,
    outcomes: Sequence[Outcome],
    now: datetime,
    retry: RetryPolicy,
    breaker: BreakerPolicy,
    rng: random.Random | None = None,
    throttle_limit: int = 10,
    then_claim: Callable[[], Awaitable[list[ClaimedDocument]]] | None = None,
) -> CompleteResult:
    """Record how attempts ended, for a whole group of documents in one transaction.

    Fenced: an outcome is recorded only if its lease token still holds the document; the
    others come back in ``lost`` and change nothing. Each recorded outcome's artifacts (its
    chunks, say) are stored in this same transaction, so a document is done exactly when
    everything it produced is stored. A throttled outcome is not charged an attempt, up to
    ``throttle_limit`` throttles in a row (see ``ledger/queue/throttles.py``).

    ``then_claim`` leases new work in the same transaction (``result.claimed``), after the
    outcomes and the breaker, before the batches' completion is asked: a batch it leased
    from has running documents, so it is not complete and is not asked about (a statement,
    a round trip on PostgreSQL, at nearly every finish of a busy worker). Not when the
    outcomes created child documents: a container's new children are never leased by the
    transaction that created them, so a crash right after it leaves them pending, uncharged.
    """
    if not outcomes:
        claimed = await then_claim() if then_claim is not None else None
        return CompleteResult(recorded=[], lost=[], claimed=claimed)
    rng = rng or random.Random()
    by_id = {o.document_id: o for o in outcomes}
    if len(by_id) != len(outcomes):
        raise ValueError("one outcome per document per call")
    held: dict[int, Any] = {}
    # With outcomes to index, the fence also reads what their index step needs of each
    # document (a statement per document less).
    indexing = any(o.index is not None for o in outcomes)
    query = prepared(
        conn,
        ("held", indexing),
        lambda: backend_of(conn).lock_rows(
            select(
                documents.c.id,
                documents.c.batch_id,
                documents.c.lease_token,
                documents.c.attempts,
                batches.c.max_attempts,
                batches.c.state,
                batches.c.n_pending,
                *((documents.c.source, batches.c.owner) if indexing else ()),
            )
            .join(batches, batches.c.id == documents.c.batch_id)
            .where(backend_of(conn).one_of(documents.c.id), LEASED),
            of=documents,
        ),
    )
    for r in (await direct.execute(conn, query, {"p_ids": list(by_id)})).all():
        if r.lease_token == by_id[r.id].lease_token:
            held[r.id] = r
    runs = await throttle_runs(
        conn,
        [o.document_id for o in outcomes
         if o.outcome is AttemptOutcome.THROTTLED and o.document_id in held],
    )  # fmt: skip
    endings: list[Ending] = []
    due: set[str] = set()  # batches that got new child documents to claim
    adopted: list[int] = []  # parents whose children were created
    indexed = outcome_store.GroupContents()
    for outcome in outcomes:
        row = held.get(outcome.document_id)
        if row is None:
            continue
        if outcome.index is not None and outcome.outcome in (
            AttemptOutcome.DONE,
            AttemptOutcome.SKIPPED,
        ):
            # Data, not a callback: no file is read here (the chunks came in memory or
            # were staged before this transaction); a duplicate found now becomes a skip.
            outcome = await outcome_store.record(
                conn,
                outcome,
                batch_id=row.batch_id,
                source=row.source,
                owner=row.owner,
                now=now,
                group=indexed,
            )
        throttle = (
            _Throttle(runs.get(row.id, 0), throttle_limit)
            if outcome.outcome is AttemptOutcome.THROTTLED
            else _UNTHROTTLED  # not read: built per document, it was measurable
        )
        ending = _ending_for(outcome, row, now, retry, rng, throttle)
        # Not when the parent ends otherwise, nor into a batch cancelled meanwhile (the
        # parent's work is kept; nothing new is started there).
        if (
            outcome.children is not None
            and ending.status == DocumentStatus.DONE
            and row.state != BatchState.CANCELLED.value
        ):
            await replace_children(
                conn,
                parent_id=outcome.document_id,
                batch_id=row.batch_id,
                children=outcome.children,
                now=now,
            )
            adopted.append(outcome.document_id)
            if outcome.children:
                due.add(row.batch_id)
        endings.append(ending)
    await write_endings(conn, endings, now, worker_id=worker_id)
    for batch_id in sorted({e.batch_id for e in endings if e.systemic}):
        await check_breaker(conn, batch_id, breaker, now)
    claimed = await then_claim() if then_claim is not None and not adopted else None
    leased_from = {d.batch_id for d in claimed} if claimed else set()
    await mark_completed(conn, _completable(conn, endings, held) - leased_from, now)
    if due:
        await backend_of(conn).announce_due(conn, sorted(due))
    return CompleteResult(
        recorded=[e.doc_id for e in endings],
        lost=[i for i in by_id if i not in held],
        statuses={e.doc_id: e.status for e in endings},
        outcomes={e.doc_id: e.outcome for e in endings},
        adopted=adopted,
        claimed=claimed,
    )


def _completable(
    conn: AsyncConnection, endings: Sequence[Ending], held: dict[int, Any]
) -> set[str]:
    """The batches these endings may have completed.

    With one writer at a time (SQLite), the fence's read of a batch's pending count is still
    true at commit but for this transaction's own writes, and endings only add pending
    documents: a batch that had some is not complete, and its check (a statement, a trip to
    the driver's thread) is saved. Concurrent writers (PostgreSQL) may claim them meanwhile.
    """
    single_writer = backend_of(conn).single_writer
    return {e.batch_id for e in endings if not single_writer or held[e.doc_id].n_pending == 0}


@dataclass(frozen=True)
class _Throttle:
    """A document's throttles in a row before this attempt, and how many are free."""

    run: int = 0
    limit: int = 10


_UNTHROTTLED = _Throttle()
_CANCELLED = BatchState.CANCELLED.value  # an enum's value is a property: read it once


def _ending_for(
    outcome: Outcome,
    row: Any,
    now: datetime,
    retry: RetryPolicy,
    rng: random.Random,
    throttle: _Throttle = _UNTHROTTLED,
) -> Ending:
    cancelled = row.state == _CANCELLED
    kind = outcome.outcome
    if kind in (AttemptOutcome.DONE, AttemptOutcome.SKIPPED):
        return Ending(
            doc_id=row.id,
            batch_id=row.batch_id,
            status=DocumentStatus.DONE if kind is AttemptOutcome.DONE else DocumentStatus.SKIPPED,
            outcome=kind,
            next_attempt_at=now,
            result=outcome.result if outcome.result is not None else {},
        )
    if kind is AttemptOutcome.RELEASED:
        # Giving a document back on shutdown is not a failure: the attempt is not counted.
        return Ending(
            doc_id=row.id,
            batch_id=row.batch_id,
            status=DocumentStatus.CANCELLED if cancelled else DocumentStatus.PENDING,
            outcome=kind,
            next_attempt_at=now,
            uncount=True,
            unstarted=outcome.unstarted,
        )
    error = outcome.error
    if error is None:
        raise ValueError(f"outcome {kind} for document {row.id} needs an error")
    message = error.message
    code = error.code
    systemic = error.systemic
    next_attempt_at = now
    if kind is AttemptOutcome.THROTTLED and not cancelled:
        if throttle.run < throttle.limit:
            # Not charged: the claim counted this attempt, the ending gives it back.
            delay = throttle_delay(throttle.run, error.retry_after, retry, rng)
            return Ending(
                doc_id=row.id,
                batch_id=row.batch_id,
                status=DocumentStatus.PENDING,
                outcome=AttemptOutcome.THROTTLED,
                next_attempt_at=now + timedelta(seconds=delay),
                error_code=code,
                error_message=message,
                uncount=True,
            )
        kind = AttemptOutcome.RETRY
        code, systemic = ErrorCode.RATE_LIMITED.value, True
        message = past_limit_message(message, throttle.run, throttle.limit)
    if cancelled:
        status, attempt_outcome = DocumentStatus.CANCELLED, AttemptOutcome.CANCELLED
    elif kind is AttemptOutcome.RETRY and row.attempts < row.max_attempts:
        status, attempt_outcome = DocumentStatus.PENDING, AttemptOutcome.RETRY
        delay = retry.delay(row.attempts, retry_after=error.retry_after, rng=rng)
        next_attempt_at = now + timedelta(seconds=delay)
    else:
        status, attempt_outcome = DocumentStatus.FAILED, AttemptOutcome.FAILED
        if kind is AttemptOutcome.RETRY:
            message = f"{message} (gave up after {plural(row.attempts, 'attempt')})"
    return Ending(
        doc_id=row.id,
        batch_id=row.batch_id,
        status=status,
        outcome=attempt_outcome,
        next_attempt_at=next_attempt_at,
        error_code=code,
        error_message=message,
        systemic=systemic,
    )
