"""How attempts end: the attempt rows, the events and the documents' new state, set-based.

The claim's other half. Every caller (the worker's finish, the rescue of expired leases) has
verified the leases under lock in its own write transaction; this module writes the endings
it decided, and stamps the batches that have nothing left to do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Boolean, String, Text, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db import direct
from ledger.db.backends import backend_of
from ledger.db.models import LEASED, attempts, batches, documents, events
from ledger.db.prepared import prepared, time_param
from ledger.queue.events import record_events
from ledger.states import TERMINAL_STATUSES, AttemptOutcome, DocumentStatus

# Values per expanding IN (...) list (one parameter each): well under every backend's limit.
PARAMS_CHUNK = 2_000


def in_chunks(items: Sequence[Any], size: int = PARAMS_CHUNK) -> Iterable[Sequence[Any]]:
    """``items`` in slices of at most ``size``, one bound ``IN`` list each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Ending(msgspec.Struct, frozen=True):
    """How one attempt ends: the document's new state and what the attempt row says.

    A msgspec record: one is made per document in every finish, and a frozen dataclass
    took several times as long to construct."""

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


async def write_endings(
    conn: AsyncConnection, endings: Sequence[Ending], now: datetime, *, worker_id: str | None
) -> None:
    """End a group of attempts whose leases were verified under lock by the caller.

    Set-based: the attempt rows and events are copied from the document rows with
    INSERT ... SELECT, and the documents change with one UPDATE per group of identical
    endings, so a group of a thousand documents costs a handful of statements. Per-document
    results are written first, while the document is still running.
    """
    if not endings:
        return
    groups: dict[tuple[Any, ...], list[Ending]] = defaultdict(list)
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
        ids = [e.doc_id for e in members]
        await _end_group(conn, first, ids, now, worker_id, result=shared)
    # Documents due again at once (rescued, released) may be waiting for an idle worker.
    # Retries with a backoff are not announced: workers wake for them on their own timer.
    await backend_of(conn).announce_due(
        conn,
        (
            e.batch_id
            for e in endings
            if e.status is DocumentStatus.PENDING and e.next_attempt_at <= now
        ),
    )


async def _end_group(
    conn: AsyncConnection,
    ending: Ending,
    ids: list[int],
    now: datetime,
    worker_id: str | None,
    *,
    result: dict[str, Any] | None = None,
) -> None:
    clean = ending.outcome in _CLEAN_OUTCOMES
    code = None if clean else ending.error_code
    message = None if clean else ending.error_message
    owner_from_row = worker_id is None
    # The attempt rows and the events are copied from the documents before their update
    # (on PostgreSQL all three in one statement, whose parts read the same snapshot).
    with_attempts = not ending.unstarted
    with_events = not (
        ending.outcome is AttemptOutcome.RELEASED and ending.status is DocumentStatus.PENDING
    )
    finished = ending.status in TERMINAL_STATUSES
    clears_error = ending.status is DocumentStatus.DONE or ending.status is DocumentStatus.SKIPPED
    sets_error = not clears_error and code is not None
    shape = (clears_error, sets_error, result is not None, ending.uncount)
    params: dict[str, Any] = {
        "p_ids": ids,
        "p_now": now,
        "p_status": ending.status.value,
        "p_next": ending.next_attempt_at,
        "p_finished": now if finished else None,
    }
    if with_attempts or sets_error:
        params.update(p_code=code, p_message=message)
    if with_attempts:
        params.update(p_outcome=ending.outcome.value, p_systemic=ending.systemic)
        if not owner_from_row:
            params["p_worker"] = worker_id
    if with_events:
        if ending.outcome is AttemptOutcome.THROTTLED:
            kind = "document_throttled"
        elif ending.status is DocumentStatus.PENDING:
            kind = "document_retry"
        else:
            kind = f"document_{ending.status.value}"
        params["p_kind"] = kind
        params["p_data"] = (
            None if code is None else {"error_code": code, "error_message": (message or "")[:500]}
        )
    if result is not None:
        params["p_result"] = result
    if backend_of(conn).writes_in_one_statement:
        key = ("end-all", with_attempts, owner_from_row, with_events, *shape)
        await conn.execute(
            prepared(
                conn,
                key,
                lambda: _documents_end_update(conn, *shape).add_cte(
                    *((_attempts_insert(conn, owner_from_row).cte("ended_attempts"),)
                      if with_attempts else ()),
                    *((_document_events_insert(conn).cte("ended_events"),)
                      if with_events else ()),
                ),
            ),
            params,
        )  # fmt: skip
        return
    if with_attempts:
        await direct.execute(
            conn,
            prepared(
                conn,
                ("attempts", owner_from_row),
                lambda: _attempts_insert(conn, owner_from_row),
            ),
            params,
        )
    if with_events:
        await direct.execute(
            conn, prepared(conn, ("events",), lambda: _document_events_insert(conn)), params
        )
    await direct.execute(
        conn,
        prepared(conn, ("end", *shape), lambda: _documents_end_update(conn, *shape)),
        params,
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
        backend_of(conn).seconds_between(finished_at, documents.c.started_at),
        bindparam("p_outcome", type_=String()),
        bindparam("p_code", type_=String()),
        bindparam("p_message", type_=Text()),
        bindparam("p_systemic", type_=Boolean()),
    ).where(backend_of(conn).one_of(documents.c.id))
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


def _document_events_insert(conn: AsyncConnection) -> Any:
    return insert(events).from_select(
        ["batch_id", "document_id", "kind", "data", "created_at"],
        select(
            documents.c.batch_id,
            documents.c.id,
            bindparam("p_kind", type_=String()),
            bindparam("p_data", type_=events.c.data.type),
            time_param("p_now"),
        ).where(backend_of(conn).one_of(documents.c.id)),
    )


def _documents_end_update(
    conn: AsyncConnection, clears_error: bool, sets_error: bool, has_result: bool, uncount: bool
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
    return update(documents).where(backend_of(conn).one_of(documents.c.id), LEASED).values(**values)


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
                backend_of(conn).one_of(batches.c.id),
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
