"""The worker side of the ledger: claim, heartbeat, complete, rescue, all fenced by lease.

Every function here runs inside the caller's write transaction and leaves the database in a
state that is correct if the process dies right after the commit, or right before it.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.db.dialect import has_single_writer, lock_rows, random_token, seconds_between
from ledger.db.models import attempts, batches, documents, events, workers
from ledger.db.notify import announce_due
from ledger.db.prepared import ids_param, prepared, time_param
from ledger.index import outcome_store, staged_chunks
from ledger.model import ClaimedDocument, CompleteResult, Outcome
from ledger.queue.children import replace_children
from ledger.queue.events import record_events
from ledger.queue.throttles import past_limit_message, throttle_delay, throttle_runs
from ledger.states import (
    TERMINAL_STATUSES,
    AttemptOutcome,
    BatchState,
    DocumentStatus,
    ErrorCode,
)
from ledger.wording import plural

PARAMS_CHUNK = 2_000  # ids per IN (...) list: well under every backend's parameter limit


@dataclass(frozen=True)
class BreakerPolicy:
    """Pause a batch when most recent attempts fail alike: an outage, not bad documents."""

    window: int = 20
    threshold: float = 0.8


def _chunks(items: Sequence[Any], size: int = PARAMS_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class _Ending:
    """How one attempt ends: the document's new state and what the attempt row says."""

    doc_id: int
    batch_id: str
    status: DocumentStatus
    outcome: AttemptOutcome
    next_attempt_at: datetime
    error_code: str | None = None
    error_message: str | None = None
    systemic: bool = False
    uncount: bool = False  # the attempt does not count against max_attempts (released)
    unstarted: bool = False  # never started: no attempt row (claimed as a stop arrived)
    result: dict[str, Any] | None = None

    def group_key(self) -> tuple[Any, ...]:
        return (
            self.status,
            self.outcome,
            self.next_attempt_at,
            self.error_code,
            self.error_message,
            self.systemic,
            self.uncount,
            self.unstarted,
        )


_CLEAN_OUTCOMES = frozenset({AttemptOutcome.DONE, AttemptOutcome.SKIPPED, AttemptOutcome.RELEASED})


async def _write_endings(
    conn: AsyncConnection, endings: Sequence[_Ending], now: datetime, *, worker_id: str | None
) -> None:
    """End a group of attempts whose leases were verified under lock by the caller.

    Set-based: the attempt rows and events are copied from the document rows with
    INSERT ... SELECT, and the documents change with one UPDATE per group of identical
    endings, so a group of a thousand documents costs a handful of statements. Per-document
    results are written first, while the document is still running.
    """
    if not endings:
        return
    groups: dict[tuple[Any, ...], list[_Ending]] = defaultdict(list)
    for e in endings:
        groups[e.group_key()].append(e)
    for members in groups.values():
        first = members[0]
        # Documents that all produced the same result (noop's {}, a skip's reason) get it in
        # the group's UPDATE: one JSON encoding instead of one statement row per document.
        shared = first.result
        if shared is not None and any(e.result != shared for e in members):
            shared = None
            await conn.execute(
                prepared(
                    conn,
                    ("result",),
                    lambda: (
                        update(documents)
                        .where(documents.c.id == bindparam("b_id"))
                        .values(result=bindparam("b_result", type_=documents.c.result.type))
                    ),
                ),
                [{"b_id": e.doc_id, "b_result": e.result} for e in members],
            )
        for ids in _chunks([e.doc_id for e in members]):
            await _end_group(conn, first, list(ids), now, worker_id, result=shared)
    # Documents due again at once (rescued, released) may be waiting for an idle worker.
    # Retries with a backoff are not announced: workers wake for them on their own timer.
    await announce_due(
        conn,
        (
            e.batch_id
            for e in endings
            if e.status is DocumentStatus.PENDING and e.next_attempt_at <= now
        ),
    )


async def _end_group(
    conn: AsyncConnection,
    ending: _Ending,
    ids: list[int],
    now: datetime,
    worker_id: str | None,
    *,
    result: dict[str, Any] | None = None,
) -> None:
    clean = ending.outcome in _CLEAN_OUTCOMES
    code = None if clean else ending.error_code
    message = None if clean else ending.error_message
    params: dict[str, Any] = {"p_ids": ids, "p_now": now}
    if not ending.unstarted:
        params.update(
            p_worker=worker_id,
            p_outcome=ending.outcome.value,
            p_code=code,
            p_message=message,
            p_systemic=ending.systemic,
        )
        await conn.execute(
            prepared(
                conn,
                ("attempts", worker_id is None),
                lambda: _attempts_insert(conn, worker_id is None),
            ),
            params,
        )
    if not (ending.outcome is AttemptOutcome.RELEASED and ending.status is DocumentStatus.PENDING):
        if ending.outcome is AttemptOutcome.THROTTLED:
            kind = "document_throttled"
        elif ending.status is DocumentStatus.PENDING:
            kind = "document_retry"
        else:
            kind = f"document_{ending.status.value}"
        data = (
            None if code is None else {"error_code": code, "error_message": (message or "")[:500]}
        )
        await conn.execute(
            prepared(conn, ("events",), _document_events_insert),
            {"p_ids": ids, "p_now": now, "p_kind": kind, "p_data": data},
        )
    finished = ending.status in TERMINAL_STATUSES
    clears_error = ending.status is DocumentStatus.DONE or ending.status is DocumentStatus.SKIPPED
    sets_error = not clears_error and code is not None
    shape = (clears_error, sets_error, result is not None, ending.uncount)
    update_params: dict[str, Any] = {
        "p_ids": ids,
        "p_now": now,
        "p_status": ending.status.value,
        "p_next": ending.next_attempt_at,
        "p_finished": now if finished else None,
    }
    if sets_error:
        update_params.update(p_code=code, p_message=message)
    if result is not None:
        update_params["p_result"] = result
    await conn.execute(
        prepared(conn, ("end", *shape), lambda: _documents_end_update(*shape)), update_params
    )


def _attempts_insert(conn: AsyncConnection, owner_from_row: bool) -> Any:
    """Copy the attempt rows of a group of documents ending alike from their document rows."""
    now = time_param("p_now")
    # A clock that stepped back must not make an attempt end before it started.
    finished_at = case((documents.c.started_at > now, documents.c.started_at), else_=now)
    # Numbered from the document's earlier attempt rows, not from its attempt budget: a
    # retry resets the budget (documents.attempts) but its attempts go on from 2, 3...
    prior = attempts.alias("prior")
    number = (
        select(func.coalesce(func.max(prior.c.attempt), 0) + 1)
        .where(prior.c.document_id == documents.c.id)
        .scalar_subquery()
    )
    selected = select(
        documents.c.id,
        documents.c.batch_id,
        number,
        documents.c.lease_token,
        documents.c.lease_owner if owner_from_row else bindparam("p_worker", type_=String()),
        documents.c.started_at,
        finished_at,
        seconds_between(conn, finished_at, documents.c.started_at),
        bindparam("p_outcome", type_=String()),
        bindparam("p_code", type_=String()),
        bindparam("p_message", type_=Text()),
        bindparam("p_systemic", type_=Boolean()),
    ).where(documents.c.id.in_(ids_param()))
    return insert(attempts).from_select(
        [
            "document_id",
            "batch_id",
            "attempt",
            "lease_token",
            "worker_id",
            "started_at",
            "finished_at",
            "duration_seconds",
            "outcome",
            "error_code",
            "error_message",
            "systemic",
        ],
        selected,
    )


def _document_events_insert() -> Any:
    return insert(events).from_select(
        ["batch_id", "document_id", "kind", "data", "created_at"],
        select(
            documents.c.batch_id,
            documents.c.id,
            bindparam("p_kind", type_=String()),
            bindparam("p_data", type_=events.c.data.type),
            time_param("p_now"),
        ).where(documents.c.id.in_(ids_param())),
    )


def _documents_end_update(
    clears_error: bool, sets_error: bool, has_result: bool, uncount: bool
) -> Any:
    now = time_param("p_now")
    values: dict[str, Any] = {
        "status": bindparam("p_status", type_=String()),
        "next_attempt_at": time_param("p_next"),
        "lease_owner": None,
        "lease_token": None,
        "lease_expires_at": None,
        "finished_at": time_param("p_finished"),
        "updated_at": now,
    }
    if clears_error:
        values["error_code"] = None
        values["error_message"] = None
    elif sets_error:
        values["error_code"] = bindparam("p_code", type_=String())
        values["error_message"] = bindparam("p_message", type_=Text())
    if has_result:
        values["result"] = bindparam("p_result", type_=documents.c.result.type)
    if uncount:
        values["attempts"] = case((documents.c.attempts > 0, documents.c.attempts - 1), else_=0)
    return (
        update(documents)
        .where(
            documents.c.id.in_(ids_param()),
            documents.c.status == DocumentStatus.RUNNING.value,
        )
        .values(**values)
    )


async def mark_completed(conn: AsyncConnection, batch_ids: Iterable[str], now: datetime) -> None:
    """Stamp completed_at on batches that have nothing left to do, with an event, once."""
    ids = sorted(set(batch_ids))
    if not ids:
        return
    statement = prepared(
        conn,
        ("completed",),
        lambda: (
            update(batches)
            .where(
                batches.c.id.in_(ids_param()),
                batches.c.completed_at.is_(None),
                batches.c.n_pending == 0,
                batches.c.n_running == 0,
            )
            .values(completed_at=time_param("p_now"), updated_at=time_param("p_now"))
            .returning(batches.c.id)
        ),
    )
    done = (await conn.execute(statement, {"p_ids": ids, "p_now": now})).scalars().all()
    await record_events(conn, now, [(b, None, "batch_completed", None) for b in done])


# --------------------------------------------------------------------------- rescue


async def rescue_expired(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """End the attempts whose worker stopped renewing its lease (crash, kill -9, hang).

    Each such attempt is recorded as ``lease_expired``. The document goes back to pending,
    due at once, or to failed when that was its last allowed attempt, or to cancelled when
    its batch was cancelled. At most ``limit`` leases per call keep the transaction short.
    """
    query = prepared(
        conn,
        ("expired",),
        lambda: lock_rows(
            conn,
            select(
                documents.c.id,
                documents.c.batch_id,
                documents.c.attempts,
                documents.c.lease_owner,
                batches.c.max_attempts,
                batches.c.state,
            )
            .join(batches, batches.c.id == documents.c.batch_id)
            .where(
                documents.c.status == DocumentStatus.RUNNING.value,
                documents.c.lease_expires_at < time_param("p_now"),
            )
            .order_by(documents.c.lease_expires_at)
            .limit(bindparam("p_limit", type_=Integer())),
            of=documents,
            skip_locked=True,
        ),
    )
    rows = (await conn.execute(query, {"p_now": now, "p_limit": limit})).all()
    if not rows:
        return 0
    endings = []
    for r in rows:
        base = (
            f"worker {r.lease_owner} stopped renewing its lease during attempt "
            f"{r.attempts} of {r.max_attempts} (crashed, killed or hung)"
        )
        if r.state == BatchState.CANCELLED.value:
            status, message = DocumentStatus.CANCELLED, base
        elif r.attempts >= r.max_attempts:
            status, message = DocumentStatus.FAILED, base + "; no attempts left"
        else:
            status, message = DocumentStatus.PENDING, base + "; will retry"
        endings.append(
            _Ending(
                doc_id=r.id,
                batch_id=r.batch_id,
                status=status,
                outcome=AttemptOutcome.LEASE_EXPIRED,
                next_attempt_at=now,  # due at once: the claim that rescued it may take it
                error_code=ErrorCode.LEASE_EXPIRED.value,
                error_message=message,
            )
        )
    await _write_endings(conn, endings, now, worker_id=None)
    # What the ended attempts staged can never be attached now (the finish takes only the
    # holding token's rows): dropped with the attempt.
    await staged_chunks.clear(conn, [e.doc_id for e in endings])
    await mark_completed(conn, (e.batch_id for e in endings), now)
    return len(endings)


# --------------------------------------------------------------------------- claim


async def claim(
    conn: AsyncConnection,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    lease_seconds: float,
    batch_ids: Sequence[str] | None = None,
    processors: Sequence[str] | None = None,
    rng: random.Random | None = None,
) -> list[ClaimedDocument]:
    """Lease up to ``limit`` due documents to ``worker_id``.

    With ``processors``, only of batches whose processor is one of them: a worker takes only
    work it can run, and a batch nobody can run waits (it never fails for it).

    Due: pending with next_attempt_at <= now, in an active batch (expired leases were turned
    back into pending by :func:`rescue_expired` in the same transaction). Higher priority
    batches first; batches of equal priority share the claim evenly, so a huge batch cannot
    starve a small one. Each document gets its own lease token.
    """
    if limit <= 0:
        return []
    rng = rng or random.Random()
    filtered = batch_ids is not None
    routed = processors is not None
    candidates = prepared(
        conn, ("candidates", filtered, routed), lambda: _claim_candidates(filtered, routed)
    )
    params: dict[str, Any] = {}
    if batch_ids is not None:
        params["p_ids"] = list(batch_ids)
    if processors is not None:
        params["p_processors"] = list(processors)
    tiers: dict[int, list[Any]] = defaultdict(list)
    for row in (await conn.execute(candidates, params)).all():
        tiers[row.priority].append(row)

    expires = now + timedelta(seconds=lease_seconds)
    claimed: list[ClaimedDocument] = []
    remaining = limit
    for priority in sorted(tiers, reverse=True):
        open_batches = tiers[priority]
        rng.shuffle(open_batches)  # nobody is always first in line
        while remaining > 0 and open_batches:
            quota = math.ceil(remaining / len(open_batches))
            still_open = []
            for batch in open_batches:
                take = min(quota, remaining)
                if take <= 0:
                    break
                got = await _lease_from_batch(conn, batch, take, worker_id, now, expires)
                claimed.extend(got)
                remaining -= len(got)
                if len(got) == take:
                    still_open.append(batch)
            open_batches = still_open
        if remaining <= 0:
            break
    return claimed


def _claim_candidates(filtered: bool, routed: bool = False) -> Any:
    query = select(
        batches.c.id,
        batches.c.priority,
        batches.c.processor,
        batches.c.options,
        batches.c.max_attempts,
        batches.c.started_at,
    ).where(batches.c.state == BatchState.ACTIVE.value, batches.c.n_pending > 0)
    if filtered:
        query = query.where(batches.c.id.in_(ids_param()))
    if routed:
        # A bound list, not part of the statement: one cached statement serves every worker.
        query = query.where(batches.c.processor.in_(ids_param("p_processors")))
    return query


def _lease_statement(conn: AsyncConnection) -> Any:
    now = time_param("p_now")
    due = lock_rows(
        conn,
        select(documents.c.id)
        .where(
            documents.c.batch_id == bindparam("p_batch", type_=String()),
            documents.c.status == DocumentStatus.PENDING.value,
            documents.c.next_attempt_at <= now,
        )
        .order_by(documents.c.next_attempt_at, documents.c.id)
        .limit(bindparam("p_take", type_=Integer())),
        of=documents,
        skip_locked=True,
    )
    due_cte = due.cte("due")
    return (
        update(documents)
        .where(
            # A CTE runs once: as a plain IN (subquery) PostgreSQL may run the locking
            # subquery again per row and lease more than `take` documents.
            documents.c.id.in_(select(due_cte.c.id)),
            documents.c.status == DocumentStatus.PENDING.value,
        )
        .values(
            status=DocumentStatus.RUNNING.value,
            attempts=documents.c.attempts + 1,
            lease_owner=bindparam("p_worker", type_=String()),
            lease_token=random_token(conn),
            lease_expires_at=time_param("p_expires"),
            started_at=now,
            updated_at=now,
        )
        .returning(
            documents.c.id,
            documents.c.source,
            documents.c.attempts,
            documents.c.lease_token,
            documents.c.source_size,
            documents.c.source_mtime_ns,
            documents.c.source_sha256,
            documents.c.meta,
        )
    )


async def _lease_from_batch(
    conn: AsyncConnection,
    batch: Any,
    take: int,
    worker_id: str,
    now: datetime,
    expires: datetime,
) -> list[ClaimedDocument]:
    """Lease the ``take`` oldest due documents of one batch in a single statement."""
    if batch.started_at is None:
        # Stamped before the claim, not after it: the claim's counter trigger locks the batch
        # row until commit, and every statement in between makes other claimers wait longer.
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch.id, batches.c.started_at.is_(None))
            .values(started_at=now, updated_at=now)
        )
    rows = (
        await conn.execute(
            prepared(conn, ("lease",), lambda: _lease_statement(conn)),
            {
                "p_batch": batch.id,
                "p_now": now,
                "p_take": take,
                "p_worker": worker_id,
                "p_expires": expires,
            },
        )
    ).all()
    if not rows:
        return []
    options = dict(batch.options or {})
    leased = [
        ClaimedDocument(
            id=r.id,
            batch_id=batch.id,
            source=r.source,
            attempt=r.attempts,
            max_attempts=batch.max_attempts,
            lease_token=r.lease_token,
            lease_expires_at=expires,
            started_at=now,
            processor=batch.processor,
            options=options,
            size=r.source_size,
            mtime_ns=r.source_mtime_ns,
            sha256=r.source_sha256,
            meta=r.meta,
        )
        for r in rows
    ]
    leased.sort(key=lambda d: d.id)
    return leased


# --------------------------------------------------------------------------- heartbeat


async def heartbeat(
    conn: AsyncConnection,
    *,
    worker_id: str,
    held: Sequence[tuple[int, str]],
    now: datetime,
    lease_seconds: float,
    finished: int | None = None,
) -> list[int]:
    """Extend the leases this worker still holds; return the ids of those it lost.

    A lease is held while the document is running with this worker's token. A lease that
    was taken over (or ended by rescue) is reported, never extended. ``finished`` is the
    worker's count of documents it ended, shown in the list of workers.
    """
    alive: dict[str, Any] = {"heartbeat_at": now}
    if finished is not None:
        alive["documents_finished"] = finished
    await conn.execute(update(workers).where(workers.c.id == worker_id).values(**alive))
    if not held:
        return []
    expires = now + timedelta(seconds=lease_seconds)
    kept: set[int] = set()
    for part in _chunks(list(held)):
        result = await conn.execute(
            prepared(
                conn,
                ("renew",),
                lambda: (
                    update(documents)
                    .where(
                        documents.c.status == DocumentStatus.RUNNING.value,
                        documents.c.lease_owner == bindparam("p_worker", type_=String()),
                        tuple_(documents.c.id, documents.c.lease_token).in_(ids_param()),
                    )
                    .values(lease_expires_at=time_param("p_expires"))
                    .returning(documents.c.id)
                ),
            ),
            {"p_worker": worker_id, "p_ids": list(part), "p_expires": expires},
        )
        kept.update(result.scalars().all())
    return [doc_id for doc_id, _ in held if doc_id not in kept]


# --------------------------------------------------------------------------- complete


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
) -> CompleteResult:
    """Record how attempts ended, for a whole group of documents in one transaction.

    Fenced: an outcome is recorded only if its lease token still holds the document; the
    others come back in ``lost`` and change nothing. Each recorded outcome's artifacts (its
    chunks, say) are stored in this same transaction, so a document is done exactly when
    everything it produced is stored. A throttled outcome is not charged an attempt, up to
    ``throttle_limit`` throttles in a row (see ``ledger/queue/throttles.py``).
    """
    if not outcomes:
        return CompleteResult(recorded=[], lost=[])
    rng = rng or random.Random()
    by_id = {o.document_id: o for o in outcomes}
    if len(by_id) != len(outcomes):
        raise ValueError("one outcome per document per call")
    held: dict[int, Any] = {}
    for ids in _chunks(list(by_id)):
        query = prepared(
            conn,
            ("held",),
            lambda: lock_rows(
                conn,
                select(
                    documents.c.id,
                    documents.c.batch_id,
                    documents.c.lease_token,
                    documents.c.attempts,
                    batches.c.max_attempts,
                    batches.c.state,
                    batches.c.n_pending,
                )
                .join(batches, batches.c.id == documents.c.batch_id)
                .where(
                    documents.c.id.in_(ids_param()),
                    documents.c.status == DocumentStatus.RUNNING.value,
                ),
                of=documents,
            ),
        )
        for r in (await conn.execute(query, {"p_ids": list(ids)})).all():
            if r.lease_token == by_id[r.id].lease_token:
                held[r.id] = r
    runs = await throttle_runs(
        conn,
        [o.document_id for o in outcomes
         if o.outcome is AttemptOutcome.THROTTLED and o.document_id in held],
    )  # fmt: skip
    endings: list[_Ending] = []
    due: set[str] = set()  # batches that got new child documents to claim
    adopted: list[int] = []  # parents whose children were created
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
            outcome = await outcome_store.record(conn, outcome, batch_id=row.batch_id, now=now)
        throttle = _Throttle(runs.get(row.id, 0), throttle_limit)
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
    await _write_endings(conn, endings, now, worker_id=worker_id)
    for batch_id in sorted({e.batch_id for e in endings if e.systemic}):
        await check_breaker(conn, batch_id, breaker, now)
    await mark_completed(conn, _completable(conn, endings, held), now)
    if due:
        await announce_due(conn, sorted(due))
    return CompleteResult(
        recorded=[e.doc_id for e in endings],
        lost=[i for i in by_id if i not in held],
        statuses={e.doc_id: e.status for e in endings},
        outcomes={e.doc_id: e.outcome for e in endings},
        adopted=adopted,
    )


def _completable(
    conn: AsyncConnection, endings: Sequence[_Ending], held: dict[int, Any]
) -> set[str]:
    """The batches these endings may have completed.

    With one writer at a time (SQLite), the fence's read of a batch's pending count is still
    true at commit but for this transaction's own writes, and endings only add pending
    documents: a batch that had some is not complete, and its check (a statement, a trip to
    the driver's thread) is saved. Concurrent writers (PostgreSQL) may claim them meanwhile.
    """
    single_writer = has_single_writer(conn.engine)
    return {e.batch_id for e in endings if not single_writer or held[e.doc_id].n_pending == 0}


@dataclass(frozen=True)
class _Throttle:
    """A document's throttles in a row before this attempt, and how many are free."""

    run: int = 0
    limit: int = 10


def _ending_for(
    outcome: Outcome,
    row: Any,
    now: datetime,
    retry: RetryPolicy,
    rng: random.Random,
    throttle: _Throttle = _Throttle(),
) -> _Ending:
    cancelled = row.state == BatchState.CANCELLED.value
    kind = outcome.outcome
    if kind in (AttemptOutcome.DONE, AttemptOutcome.SKIPPED):
        return _Ending(
            doc_id=row.id,
            batch_id=row.batch_id,
            status=DocumentStatus.DONE if kind is AttemptOutcome.DONE else DocumentStatus.SKIPPED,
            outcome=kind,
            next_attempt_at=now,
            result=outcome.result if outcome.result is not None else {},
        )
    if kind is AttemptOutcome.RELEASED:
        # Giving a document back on shutdown is not a failure: the attempt is not counted.
        return _Ending(
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
            return _Ending(
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
    return _Ending(
        doc_id=row.id,
        batch_id=row.batch_id,
        status=status,
        outcome=attempt_outcome,
        next_attempt_at=next_attempt_at,
        error_code=code,
        error_message=message,
        systemic=systemic,
    )


# --------------------------------------------------------------------------- breaker


async def check_breaker(
    conn: AsyncConnection, batch_id: str, policy: BreakerPolicy, now: datetime
) -> str | None:
    """Pause the batch if most of its recent attempts failed with one systemic error code.

    Returns the pause reason when it tripped. Only attempts after the last resume count, so
    resuming gives the batch a fresh window.
    """
    batch = (
        await conn.execute(
            select(batches.c.state, batches.c.breaker_after_attempt).where(batches.c.id == batch_id)
        )
    ).first()
    if batch is None or batch.state != BatchState.ACTIVE.value:
        return None
    recent = (
        await conn.execute(
            select(attempts.c.error_code, attempts.c.systemic, attempts.c.error_message)
            .where(
                attempts.c.batch_id == batch_id,
                attempts.c.id > batch.breaker_after_attempt,
                # A rate limit is the service pacing us, not failing: it neither trips the
                # breaker nor dilutes the window of real outcomes.
                attempts.c.outcome != AttemptOutcome.THROTTLED.value,
            )
            .order_by(attempts.c.id.desc())
            .limit(policy.window)
        )
    ).all()
    if len(recent) < policy.window:
        return None
    codes = Counter(r.error_code for r in recent if r.systemic and r.error_code)
    if not codes:
        return None
    code, count = codes.most_common(1)[0]
    if count < policy.threshold * policy.window:
        return None
    example = next(r.error_message for r in recent if r.error_code == code)
    reason = (
        f"circuit breaker: {count} of the last {plural(len(recent), 'attempt')} failed with {code}"
        f" ({(example or '')[:300]}); resume the batch when the cause is fixed"
    )
    await conn.execute(
        update(batches)
        .where(and_(batches.c.id == batch_id, batches.c.state == BatchState.ACTIVE.value))
        .values(state=BatchState.PAUSED.value, pause_reason=reason, updated_at=now)
    )
    await record_events(
        conn, now, [(batch_id, None, "batch_paused", {"reason": reason, "breaker": True})]
    )
    return reason
