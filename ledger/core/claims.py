"""The worker side of the ledger: claim, heartbeat, complete, rescue, all fenced by lease.

Every function here runs inside the caller's write transaction and leaves the database in a
state that is correct if the process dies right after the commit, or right before it.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.core.events import EventRow, record_events
from ledger.db.dialect import lock_rows
from ledger.db.models import attempts, batches, documents, workers
from ledger.records import ClaimedDocument, CompleteResult, Outcome
from ledger.states import AttemptOutcome, BatchState, DocumentStatus, ErrorCode

PARAMS_CHUNK = 2_000  # ids per IN (...) list: well under every backend's parameter limit


@dataclass(frozen=True)
class BreakerPolicy:
    """Pause a batch when most recent attempts fail alike: an outage, not bad documents."""

    window: int = 20
    threshold: float = 0.8


def _chunks(items: Sequence[Any], size: int = PARAMS_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _new_token() -> str:
    return secrets.token_hex(16)


# One UPDATE shape for every way an attempt ends; executemany runs it for a whole group.
# The WHERE clause is the fence: only the holder of the current lease can end the attempt.
_END_ATTEMPT = (
    update(documents)
    .where(
        documents.c.id == bindparam("b_id"),
        documents.c.lease_token == bindparam("b_token"),
        documents.c.status == DocumentStatus.RUNNING.value,
    )
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
        error_code=bindparam("b_code"),
        error_message=bindparam("b_message"),
        finished_at=bindparam("b_finished"),
        result=bindparam("b_result"),
        updated_at=bindparam("b_now"),
    )
)


@dataclass
class _Ending:
    """What one ended attempt writes: the document update, the attempt row, the event."""

    doc_id: int
    batch_id: str
    token: str
    status: DocumentStatus
    attempts: int
    next_attempt_at: datetime
    finished_at: datetime | None
    error_code: str | None
    error_message: str | None
    result: dict[str, Any] | None
    attempt_no: int
    worker_id: str | None
    started_at: datetime
    outcome: AttemptOutcome
    systemic: bool = False


async def _write_endings(conn: AsyncConnection, endings: Sequence[_Ending], now: datetime) -> None:
    if not endings:
        return
    await conn.execute(
        _END_ATTEMPT,
        [
            {
                "b_id": e.doc_id,
                "b_token": e.token,
                "b_status": e.status.value,
                "b_attempts": e.attempts,
                "b_next": e.next_attempt_at,
                "b_code": e.error_code,
                "b_message": e.error_message,
                "b_finished": e.finished_at,
                "b_result": e.result,
                "b_now": now,
            }
            for e in endings
        ],
    )
    await conn.execute(
        insert(attempts),
        [
            {
                "document_id": e.doc_id,
                "batch_id": e.batch_id,
                "attempt": e.attempt_no,
                "lease_token": e.token,
                "worker_id": e.worker_id,
                "started_at": e.started_at,
                "finished_at": max(now, e.started_at),
                "duration_seconds": max((now - e.started_at).total_seconds(), 0.0),
                "outcome": e.outcome.value,
                "error_code": e.error_code if e.outcome not in _CLEAN_OUTCOMES else None,
                "error_message": e.error_message if e.outcome not in _CLEAN_OUTCOMES else None,
                "systemic": e.systemic,
            }
            for e in endings
        ],
    )
    await record_events(
        conn,
        now,
        [
            _event_for(e)
            for e in endings
            if e.outcome is not AttemptOutcome.RELEASED or e.status is not DocumentStatus.PENDING
        ],
    )


_CLEAN_OUTCOMES = frozenset({AttemptOutcome.DONE, AttemptOutcome.SKIPPED, AttemptOutcome.RELEASED})


def _event_for(e: _Ending) -> EventRow:
    kind = "document_retry" if e.status is DocumentStatus.PENDING else f"document_{e.status.value}"
    data: dict[str, Any] = {"attempt": e.attempt_no}
    if e.error_code is not None and e.status is not DocumentStatus.DONE:
        data["error_code"] = e.error_code
        data["error_message"] = (e.error_message or "")[:500]
    return (e.batch_id, e.doc_id, kind, data)


async def mark_completed(conn: AsyncConnection, batch_ids: Iterable[str], now: datetime) -> None:
    """Stamp completed_at on batches that have nothing left to do, with an event, once."""
    ids = sorted(set(batch_ids))
    if not ids:
        return
    done = (
        (
            await conn.execute(
                update(batches)
                .where(
                    batches.c.id.in_(ids),
                    batches.c.completed_at.is_(None),
                    batches.c.n_pending == 0,
                    batches.c.n_running == 0,
                )
                .values(completed_at=now, updated_at=now)
                .returning(batches.c.id)
            )
        )
        .scalars()
        .all()
    )
    await record_events(conn, now, [(b, None, "batch_completed", None) for b in done])


# --------------------------------------------------------------------------- rescue


async def rescue_expired(
    conn: AsyncConnection, *, now: datetime, limit: int, rng: random.Random | None = None
) -> int:
    """End the attempts whose worker stopped renewing its lease (crash, kill -9, hang).

    Each such attempt is recorded as ``lease_expired``. The document goes back to pending
    (right away, with a little jitter so a mass rescue does not stampede), or to failed when
    that was its last allowed attempt, or to cancelled when its batch was cancelled.
    """
    query = lock_rows(
        conn,
        select(
            documents.c.id,
            documents.c.batch_id,
            documents.c.attempts,
            documents.c.lease_token,
            documents.c.lease_owner,
            documents.c.started_at,
            batches.c.max_attempts,
            batches.c.state,
        )
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(
            documents.c.status == DocumentStatus.RUNNING.value,
            documents.c.lease_expires_at < now,
        )
        .order_by(documents.c.lease_expires_at)
        .limit(limit),
        of=documents,
        skip_locked=True,
    )
    rows = (await conn.execute(query)).all()
    if not rows:
        return 0
    rng = rng or random.Random()
    endings = []
    for r in rows:
        base = (
            f"worker {r.lease_owner} stopped renewing its lease during attempt "
            f"{r.attempts} of {r.max_attempts} (crashed, killed or hung)"
        )
        if r.state == BatchState.CANCELLED.value:
            status, finished, message = DocumentStatus.CANCELLED, now, base
        elif r.attempts >= r.max_attempts:
            status, finished, message = DocumentStatus.FAILED, now, base + "; no attempts left"
        else:
            status, finished, message = DocumentStatus.PENDING, None, base + "; will retry"
        endings.append(
            _Ending(
                doc_id=r.id,
                batch_id=r.batch_id,
                token=r.lease_token,
                status=status,
                attempts=r.attempts,
                next_attempt_at=now + timedelta(seconds=rng.random()),
                finished_at=finished,
                error_code=ErrorCode.LEASE_EXPIRED.value,
                error_message=message,
                result=None,
                attempt_no=r.attempts,
                worker_id=r.lease_owner,
                started_at=r.started_at,
                outcome=AttemptOutcome.LEASE_EXPIRED,
            )
        )
    await _write_endings(conn, endings, now)
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
    rng: random.Random | None = None,
) -> list[ClaimedDocument]:
    """Lease up to ``limit`` due documents to ``worker_id``.

    Due: pending with next_attempt_at <= now, in an active batch (expired leases were turned
    back into pending by :func:`rescue_expired` in the same transaction). Higher priority
    batches first; batches of equal priority share the claim evenly, so a huge batch cannot
    starve a small one. Each document gets its own lease token.
    """
    if limit <= 0:
        return []
    rng = rng or random.Random()
    candidates = select(batches.c.id, batches.c.priority).where(
        batches.c.state == BatchState.ACTIVE.value, batches.c.n_pending > 0
    )
    if batch_ids is not None:
        candidates = candidates.where(batches.c.id.in_(batch_ids))
    tiers: dict[int, list[str]] = defaultdict(list)
    for batch_id, priority in (await conn.execute(candidates)).all():
        tiers[priority].append(batch_id)

    expires = now + timedelta(seconds=lease_seconds)
    claimed: list[tuple[int, str]] = []
    remaining = limit
    for priority in sorted(tiers, reverse=True):
        open_batches = tiers[priority]
        rng.shuffle(open_batches)  # nobody is always first in line
        while remaining > 0 and open_batches:
            quota = math.ceil(remaining / len(open_batches))
            still_open = []
            for batch_id in open_batches:
                if remaining <= 0:
                    still_open.append(batch_id)
                    continue
                take = min(quota, remaining)
                got = await _lease_from_batch(conn, batch_id, take, worker_id, now, expires)
                claimed.extend(got)
                remaining -= len(got)
                if len(got) == take:
                    still_open.append(batch_id)
            open_batches = still_open
        if remaining <= 0:
            break
    if not claimed:
        return []
    return await _load_claimed(conn, claimed, now)


async def _lease_from_batch(
    conn: AsyncConnection,
    batch_id: str,
    take: int,
    worker_id: str,
    now: datetime,
    expires: datetime,
) -> list[tuple[int, str]]:
    due = lock_rows(
        conn,
        select(documents.c.id)
        .where(
            documents.c.batch_id == batch_id,
            documents.c.status == DocumentStatus.PENDING.value,
            documents.c.next_attempt_at <= now,
        )
        .order_by(documents.c.next_attempt_at, documents.c.id)
        .limit(take),
        of=documents,
        skip_locked=True,
    )
    ids = (await conn.execute(due)).scalars().all()
    if not ids:
        return []
    leases = [(doc_id, _new_token()) for doc_id in ids]
    await conn.execute(
        update(documents)
        .where(
            documents.c.id == bindparam("b_id"),
            documents.c.status == DocumentStatus.PENDING.value,
        )
        .values(
            status=DocumentStatus.RUNNING.value,
            attempts=documents.c.attempts + 1,
            lease_owner=worker_id,
            lease_token=bindparam("b_token"),
            lease_expires_at=expires,
            started_at=now,
            updated_at=now,
        ),
        [{"b_id": doc_id, "b_token": token} for doc_id, token in leases],
    )
    await conn.execute(
        update(batches)
        .where(batches.c.id == batch_id, batches.c.started_at.is_(None))
        .values(started_at=now, updated_at=now)
    )
    return leases


async def _load_claimed(
    conn: AsyncConnection, claimed: Sequence[tuple[int, str]], now: datetime
) -> list[ClaimedDocument]:
    tokens = dict(claimed)
    out: list[ClaimedDocument] = []
    for ids in _chunks([doc_id for doc_id, _ in claimed]):
        rows = (
            await conn.execute(
                select(
                    documents.c.id,
                    documents.c.batch_id,
                    documents.c.source,
                    documents.c.attempts,
                    documents.c.lease_token,
                    documents.c.lease_expires_at,
                    documents.c.source_size,
                    documents.c.source_mtime_ns,
                    documents.c.source_sha256,
                    documents.c.meta,
                    batches.c.processor,
                    batches.c.options,
                    batches.c.max_attempts,
                )
                .join(batches, batches.c.id == documents.c.batch_id)
                .where(documents.c.id.in_(ids))
            )
        ).all()
        for r in rows:
            if r.lease_token != tokens[r.id]:  # cannot happen under the write lock
                raise RuntimeError(f"document {r.id} changed hands inside its own claim")
            out.append(
                ClaimedDocument(
                    id=r.id,
                    batch_id=r.batch_id,
                    source=r.source,
                    attempt=r.attempts,
                    max_attempts=r.max_attempts,
                    lease_token=r.lease_token,
                    lease_expires_at=r.lease_expires_at,
                    started_at=now,
                    processor=r.processor,
                    options=dict(r.options or {}),
                    size=r.source_size,
                    mtime_ns=r.source_mtime_ns,
                    sha256=r.source_sha256,
                    meta=r.meta,
                )
            )
    order = {doc_id: i for i, (doc_id, _) in enumerate(claimed)}
    out.sort(key=lambda d: order[d.id])
    return out


# --------------------------------------------------------------------------- heartbeat


async def heartbeat(
    conn: AsyncConnection,
    *,
    worker_id: str,
    held: Sequence[tuple[int, str]],
    now: datetime,
    lease_seconds: float,
) -> list[int]:
    """Extend the leases this worker still holds; return the ids of those it lost.

    A lease is held while the document is running with this worker's token. A lease that
    was taken over (or ended by rescue) is reported, never extended.
    """
    await conn.execute(update(workers).where(workers.c.id == worker_id).values(heartbeat_at=now))
    if not held:
        return []
    expires = now + timedelta(seconds=lease_seconds)
    kept: set[int] = set()
    for part in _chunks(list(held)):
        result = await conn.execute(
            update(documents)
            .where(
                documents.c.status == DocumentStatus.RUNNING.value,
                documents.c.lease_owner == worker_id,
                tuple_(documents.c.id, documents.c.lease_token).in_(list(part)),
            )
            .values(lease_expires_at=expires)
            .returning(documents.c.id)
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
) -> CompleteResult:
    """Record how attempts ended, for a whole group of documents in one transaction.

    Fenced: an outcome is recorded only if its lease token still holds the document; the
    others come back in ``lost`` and change nothing. Each recorded outcome's extra write
    (its chunks, say) runs in this same transaction, so a document is done exactly when
    everything it produced is stored.
    """
    if not outcomes:
        return CompleteResult(recorded=[], lost=[])
    rng = rng or random.Random()
    by_id = {o.document_id: o for o in outcomes}
    if len(by_id) != len(outcomes):
        raise ValueError("one outcome per document per call")
    held: dict[int, Any] = {}
    for ids in _chunks(list(by_id)):
        query = lock_rows(
            conn,
            select(
                documents.c.id,
                documents.c.batch_id,
                documents.c.lease_token,
                documents.c.attempts,
                documents.c.started_at,
                documents.c.lease_owner,
                batches.c.max_attempts,
                batches.c.state,
            )
            .join(batches, batches.c.id == documents.c.batch_id)
            .where(documents.c.id.in_(ids), documents.c.status == DocumentStatus.RUNNING.value),
            of=documents,
        )
        for r in (await conn.execute(query)).all():
            if r.lease_token == by_id[r.id].lease_token:
                held[r.id] = r
    endings: list[_Ending] = []
    for outcome in outcomes:
        row = held.get(outcome.document_id)
        if row is None:
            continue
        if outcome.write is not None and outcome.outcome in (
            AttemptOutcome.DONE,
            AttemptOutcome.SKIPPED,
        ):
            await outcome.write(conn)
        endings.append(_ending_for(outcome, row, worker_id, now, retry, rng))
    await _write_endings(conn, endings, now)
    touched = {e.batch_id for e in endings}
    for batch_id in sorted({e.batch_id for e in endings if e.systemic}):
        await check_breaker(conn, batch_id, breaker, now)
    await mark_completed(conn, touched, now)
    recorded = [e.doc_id for e in endings]
    return CompleteResult(recorded=recorded, lost=[i for i in by_id if i not in held])


def _ending_for(
    outcome: Outcome,
    row: Any,
    worker_id: str,
    now: datetime,
    retry: RetryPolicy,
    rng: random.Random,
) -> _Ending:
    cancelled = row.state == BatchState.CANCELLED.value
    common: dict[str, Any] = {
        "doc_id": row.id,
        "batch_id": row.batch_id,
        "token": row.lease_token,
        "attempt_no": row.attempts,
        "worker_id": worker_id,
        "started_at": row.started_at,
        "next_attempt_at": now,
    }
    kind = outcome.outcome
    if kind in (AttemptOutcome.DONE, AttemptOutcome.SKIPPED):
        status = DocumentStatus.DONE if kind is AttemptOutcome.DONE else DocumentStatus.SKIPPED
        return _Ending(
            **common,
            status=status,
            attempts=row.attempts,
            finished_at=now,
            error_code=None,
            error_message=None,
            result=outcome.result if outcome.result is not None else {},
            outcome=kind,
        )
    if kind is AttemptOutcome.RELEASED:
        # Giving a document back on shutdown is not a failure: the attempt is not counted.
        return _Ending(
            **common,
            status=DocumentStatus.CANCELLED if cancelled else DocumentStatus.PENDING,
            attempts=max(row.attempts - 1, 0),
            finished_at=now if cancelled else None,
            error_code=None,
            error_message=None,
            result=None,
            outcome=kind,
        )
    error = outcome.error
    if error is None:
        raise ValueError(f"outcome {kind} for document {row.id} needs an error")
    code, message = error.code, error.message
    if cancelled:
        status, finished, attempt_outcome = DocumentStatus.CANCELLED, now, AttemptOutcome.CANCELLED
    elif kind is AttemptOutcome.RETRY and row.attempts < row.max_attempts:
        status, finished, attempt_outcome = DocumentStatus.PENDING, None, AttemptOutcome.RETRY
        delay = retry.delay(row.attempts, retry_after=error.retry_after, rng=rng)
        common["next_attempt_at"] = now + timedelta(seconds=delay)
    else:
        status, finished, attempt_outcome = DocumentStatus.FAILED, now, AttemptOutcome.FAILED
        if kind is AttemptOutcome.RETRY:
            message = f"{message} (gave up after {row.attempts} attempts)"
    return _Ending(
        **common,
        status=status,
        attempts=row.attempts,
        finished_at=finished,
        error_code=code,
        error_message=message,
        result=None,
        outcome=attempt_outcome,
        systemic=error.systemic,
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
            .where(attempts.c.batch_id == batch_id, attempts.c.id > batch.breaker_after_attempt)
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
        f"circuit breaker: {count} of the last {len(recent)} attempts failed with {code}"
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
