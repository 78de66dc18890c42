"""The worker taking and keeping work: claim documents under a lease, and heartbeat it.

Every function here runs inside the caller's write transaction and leaves the database in a
state that is correct if the process dies right after the commit, or right before it. How
an attempt ends is in ``finish.py`` (and ``endings.py``); expired leases in ``rescue.py``.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, and_, bindparam, exists, literal, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db import direct
from ledger.db.backends import backend_of
from ledger.db.models import LEASED, batches, documents, workers
from ledger.db.prepared import ids_param, inline, prepared, time_param
from ledger.model import ClaimedDocument
from ledger.queue import rescue
from ledger.queue.endings import in_chunks
from ledger.states import BatchState, DocumentStatus


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
    rescue_limit: int = 0,
) -> list[ClaimedDocument]:
    """Lease up to ``limit`` due documents to ``worker_id``.

    With ``processors``, only of batches whose processor is one of them: a worker takes only
    work it can run, and a batch nobody can run waits (it never fails for it).

    Due: pending with next_attempt_at <= now, in an active batch. With ``rescue_limit``,
    expired leases are first turned back into pending (up to that many, by
    :func:`ledger.queue.rescue.rescue_expired`) in the same transaction, so this claim may
    take them.
    Higher priority batches first; batches of equal priority share the claim evenly, so a huge
    batch cannot starve a small one. Each document gets its own lease token.
    """
    if limit <= 0:
        return []
    rng = rng or random.Random()
    filtered = batch_ids is not None
    routed = processors is not None
    candidates = prepared(
        conn,
        ("candidates", filtered, routed),
        lambda: _claim_candidates(conn, filtered, routed),
    )
    params: dict[str, Any] = {"p_now": now}
    if batch_ids is not None:
        params["p_ids"] = list(batch_ids)
    if processors is not None:
        params["p_processors"] = list(processors)
    rows = (await direct.execute(conn, candidates, params)).all()
    if rescue_limit > 0 and rows[0].expired:
        # Rare: asked in the same statement, so a claim with nothing to rescue costs no
        # statement (no round trip on PostgreSQL) for it. Rescued documents may make more
        # batches claimable: ask again.
        await rescue.rescue_expired(conn, now=now, limit=rescue_limit)
        rows = (await direct.execute(conn, candidates, params)).all()
    tiers: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        if row.id is not None:  # the one row of "no batch has due work"
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


def _claim_candidates(conn: AsyncConnection, filtered: bool, routed: bool = False) -> Any:
    """The batches with due work, and whether any lease has run out, in one statement: a
    one-row source left-joined to the batches, so the second answer comes back even when
    no batch has work (one row, its batch columns NULL)."""
    claimable = [batches.c.state == BatchState.ACTIVE.value, batches.c.n_pending > 0]
    if filtered:
        claimable.append(backend_of(conn).one_of(batches.c.id))
    if routed:
        # A bound list, not part of the statement: one cached statement serves every worker.
        claimable.append(backend_of(conn).one_of(batches.c.processor, "p_processors"))
    expired = exists().where(  # read from the partial index of running documents' leases
        documents.c.status == inline(DocumentStatus.RUNNING.value),
        documents.c.lease_expires_at < time_param("p_now"),
    )
    one_row = select(literal(1).label("one")).subquery("one_row")
    return select(
        expired.label("expired"),
        batches.c.id,
        batches.c.priority,
        batches.c.processor,
        batches.c.options,
        batches.c.max_attempts,
        batches.c.started_at,
    ).select_from(one_row.outerjoin(batches, and_(*claimable)))


def _lease_statement(conn: AsyncConnection) -> Any:
    now = time_param("p_now")
    due = backend_of(conn).lock_rows(
        select(documents.c.id)
        .where(
            documents.c.batch_id == bindparam("p_batch", type_=String()),
            documents.c.status == inline(DocumentStatus.PENDING.value),
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
            documents.c.status == inline(DocumentStatus.PENDING.value),
        )
        .values(
            status=DocumentStatus.RUNNING.value,
            attempts=documents.c.attempts + 1,
            lease_owner=bindparam("p_worker", type_=String()),
            lease_token=backend_of(conn).random_token(),
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
        await direct.execute(
            conn,
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
    batch_id, max_attempts, processor = batch.id, batch.max_attempts, batch.processor
    # Unpacked in the RETURNING's order: a row's attributes by name cost more than the
    # record itself, once per claimed document.
    leased = [
        ClaimedDocument(
            id=doc_id,
            batch_id=batch_id,
            source=source,
            attempt=attempt,
            max_attempts=max_attempts,
            lease_token=token,
            lease_expires_at=expires,
            started_at=now,
            processor=processor,
            options=options,
            size=size,
            mtime_ns=mtime_ns,
            sha256=sha256,
            meta=meta,
        )
        for doc_id, source, attempt, token, size, mtime_ns, sha256, meta in rows
    ]
    leased.sort(key=lambda d: d.id)
    return leased


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
    # Pairs stay an expanding IN list: a heartbeat is rare next to a finish, and pairs bound
    # as one value would be a join of two json_each lists, a nested loop on SQLite.
    for part in in_chunks(list(held)):
        result = await conn.execute(
            prepared(
                conn,
                ("renew",),
                lambda: (
                    update(documents)
                    .where(
                        LEASED,
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
