"""Sink rows: which version of each source every vector-store sink must mirror.

One row per (sink profile, source key). The source key is the SHA-256 of the batch's owner
and the document's source, so it names "this file of this tenant" whatever batch indexed
it. The row is written in the transaction that stores a document's chunks (the version to
mirror: document and content hash) or removes them (no document: every point of the source
must go), so the ledger never holds chunks the sink does not owe, nor forgets points the
store still holds: a row has no foreign key and outlives the batch it names.

Every new version bumps ``generation``. The sink stage leases a row, writes the store with
no transaction open, and records the outcome only if the lease token and the generation
are still the ones it claimed; otherwise it lets the row go, still pending, and the next
round mirrors whatever is current then.

A store that answers "slow down" (HTTP 429) reschedules the row without spending an
attempt: ``throttles`` counts such answers in a row, and past LEDGER_THROTTLE_LIMIT each
further one is charged (:func:`record_error`), so a store throttling for ever still fails
the row in the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Delete, Update, delete, select, tuple_, update

from ledger.db.backends import backend_of
from ledger.db.models import batches, chunk_vectors, chunks, documents, sink_rows
from ledger.index.citations import source_name
from ledger.model import SinkProgress
from ledger.queue import leasing, status_reads
from ledger.queue.progress import ConnectionRows
from ledger.states import DocumentStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_s = sink_rows
MAX_ERROR = 2000
PARAMS_CHUNK = 1_000


def source_key(owner: str | None, source: str) -> str:
    """The key of a tenant's source in every sink: its points carry it, and a new version
    of the source deletes the points of the old one by it."""
    return hashlib.sha256(f"{owner or ''}\x00{source}".encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class SinkTask:
    """A leased sink row: mirror ``document_id`` (content ``sha256``) of ``source_key``
    into ``sink``, or, with no document, remove every point of the source."""

    id: int
    sink: str
    source_key: str
    batch_id: str
    document_id: int | None
    sha256: str | None
    generation: int
    attempts: int
    lease_token: str
    throttles: int = 0  # the store's throttles in a row before this claim


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk as a sink receives it (no storage path: ``display_name`` is its citation)."""

    document_id: int
    ordinal: int
    text: str
    vector: bytes | None
    page: int | None
    char_start: int
    char_end: int


@dataclass(frozen=True)
class DocumentVersion:
    """The document a task mirrors, as it is now (absent from :func:`versions_of` when
    the document is gone, superseded or no longer the row's: then its points must go)."""

    document_id: int
    batch_id: str
    source_key: str
    display_name: str
    sha256: str


# ------------------------------------------------------------------ written with the chunks


async def enqueue(
    conn: AsyncConnection,
    *,
    sinks: Sequence[str],
    document_id: int,
    batch_id: str,
    source: str,
    sha256: str,
    now: datetime,
) -> None:
    """Make ``document_id`` (content ``sha256``) the version of its source each of
    ``sinks`` must mirror. Runs in the transaction that stores its chunks."""
    if not sinks:
        return
    owner = (
        await conn.execute(select(batches.c.owner).where(batches.c.id == batch_id))
    ).scalar_one()
    key = source_key(owner, source)
    version = _pending(now, batch_id=batch_id, document_id=document_id, sha256=sha256)
    # A new row takes the same values as a new version, from its first generation.
    first = {name: value for name, value in version.items() if name != "generation"}
    for sink in sinks:
        statement = (
            backend_of(conn)
            .insert_or_update(_s, keys=("sink", "source_key"), values=version)
            .values({**first, "sink": sink, "source_key": key, "generation": 1, "created_at": now})
        )
        await conn.execute(statement)


def _pending(now: datetime, **version: Any) -> dict[str, Any]:
    """What a new version sets: due now, a fresh count of attempts, the lease left alone
    (a stage still writing the old version finds the generation moved and lets go)."""
    return {
        **version,
        "generation": _s.c.generation + 1,
        "status": "pending",
        "attempts": 0,
        "throttles": 0,
        "points": None,
        "next_attempt_at": now,
        "last_error": None,
        "finished_at": None,
        "updated_at": now,
    }


async def mark_removed(conn: AsyncConnection, document_ids: Sequence[int], now: datetime) -> int:
    """The sinks mirroring these documents must remove their points: runs in the
    transaction that removes the documents' chunks. Returns the rows marked."""
    marked = 0
    ids = list(document_ids)
    for start in range(0, len(ids), PARAMS_CHUNK):
        part = ids[start : start + PARAMS_CHUNK]
        result = await conn.execute(
            update(_s)
            .where(_s.c.document_id.in_(part))
            .values(_pending(now, document_id=None, sha256=None))
        )
        marked += result.rowcount
    return marked


# ------------------------------------------------------------------ the sink stage


async def anything_due(conn: AsyncConnection, *, now: datetime) -> bool:
    """A read, so an idle stage does not take SQLite's write lock every round."""
    query = select(_s.c.id).where(*leasing.due(_s, now)).limit(1)
    return (await conn.execute(query)).first() is not None


async def claim(
    conn: AsyncConnection, *, now: datetime, lease: timedelta, limit: int
) -> list[SinkTask]:
    """Lease up to ``limit`` due rows, oldest due first."""
    read = select(_s).order_by(_s.c.id)
    return await leasing.claim_due(conn, _s, read, SinkTask, now=now, lease=lease, limit=limit)


async def versions_of(
    conn: AsyncConnection, tasks: Sequence[SinkTask]
) -> dict[int, DocumentVersion]:
    """The documents the tasks mirror that still hold their source's chunks (in the
    version the row names), by row id; a row missing here must remove its points."""
    wanted = {t.document_id: t for t in tasks if t.document_id is not None}
    found: dict[int, DocumentVersion] = {}
    ids = sorted(wanted)
    for start in range(0, len(ids), PARAMS_CHUNK):
        rows = await conn.execute(
            select(
                documents.c.id,
                documents.c.batch_id,
                documents.c.source,
                documents.c.meta,
                documents.c.source_sha256,
                batches.c.roots,
            )
            .join(batches, batches.c.id == documents.c.batch_id)
            .where(
                documents.c.id.in_(ids[start : start + PARAMS_CHUNK]),
                documents.c.status == DocumentStatus.DONE.value,
                documents.c.superseded_by.is_(None),
                batches.c.deleting_at.is_(None),
            )
        )
        for row in rows.all():
            for task in tasks:
                if task.document_id == row.id and task.sha256 == row.source_sha256:
                    found[task.id] = DocumentVersion(
                        document_id=row.id,
                        batch_id=row.batch_id,
                        source_key=task.source_key,
                        display_name=source_name(row.source, row.meta, row.roots),
                        sha256=row.source_sha256,
                    )
    return found


async def chunk_page(
    conn: AsyncConnection,
    document_ids: Sequence[int],
    *,
    after: tuple[int, int],
    limit: int,
) -> list[ChunkRecord]:
    """Up to ``limit`` chunks of these documents after (document id, ordinal) ``after``, in
    that order, each with its vector (None when its batch has no embedder): the chunks of
    many small documents come in one read."""
    rows = (
        await conn.execute(
            select(
                chunks.c.document_id,
                chunks.c.ordinal,
                chunks.c.text,
                chunks.c.page,
                chunks.c.char_start,
                chunks.c.char_end,
                chunk_vectors.c.vector,
            )
            .outerjoin(chunk_vectors, chunk_vectors.c.chunk_id == chunks.c.id)
            .where(
                chunks.c.document_id.in_(list(document_ids)),
                tuple_(chunks.c.document_id, chunks.c.ordinal) > tuple_(*after),
            )
            .order_by(chunks.c.document_id, chunks.c.ordinal)
            .limit(limit)
        )
    ).all()
    return [
        ChunkRecord(
            document_id=r.document_id,
            ordinal=r.ordinal,
            text=r.text,
            vector=r.vector,
            page=r.page,
            char_start=r.char_start,
            char_end=r.char_end,
        )
        for r in rows
    ]


_UNLEASED: dict[str, Any] = {"lease_token": None, "lease_expires_at": None}


async def _fenced_write(
    conn: AsyncConnection, task: SinkTask, statement: Update | Delete, now: datetime
) -> bool:
    """Run ``statement`` on the task's row if the lease and the generation are still the
    claimed ones; else let the row go (:func:`release`) and say False."""
    fenced = statement.where(
        _s.c.id == task.id,
        _s.c.lease_token == task.lease_token,
        _s.c.generation == task.generation,
    )
    if isinstance(fenced, Update):
        fenced = fenced.values(updated_at=now)
    if (await conn.execute(fenced)).rowcount == 1:
        return True
    await release(conn, task, now=now)
    return False


async def record_done(
    conn: AsyncConnection, task: SinkTask, *, points: int, removed: bool, now: datetime
) -> bool:
    """The store holds the task's version (``removed``: none of the source's points): the
    row is done, or deleted when nothing of the source is left to mirror. False when the
    lease or the version moved on (the row is let go for the next round)."""
    if removed:
        return await _fenced_write(conn, task, delete(_s), now)
    return await _fenced_write(
        conn,
        task,
        update(_s).values(
            status="done",
            attempts=task.attempts + 1,
            throttles=0,
            points=points,
            last_error=None,
            finished_at=now,
            **_UNLEASED,
        ),
        now,
    )


async def record_error(
    conn: AsyncConnection,
    task: SinkTask,
    error: str,
    *,
    retry_at: datetime | None,
    now: datetime,
    throttled: bool = False,
) -> bool:
    """The store refused or failed: due again at ``retry_at``, or failed for good (None);
    an attempt is spent. ``throttled``: a throttle past the limit, charged (the run of
    throttles goes on, so the next one is charged too). False when the lease or the
    version moved on."""
    final = retry_at is None
    return await _fenced_write(
        conn,
        task,
        update(_s).values(
            status="failed" if final else "pending",
            attempts=task.attempts + 1,
            throttles=task.throttles + 1 if throttled else 0,
            next_attempt_at=retry_at or now,
            last_error=error[:MAX_ERROR] or "error",
            finished_at=now if final else None,
            **_UNLEASED,
        ),
        now,
    )


async def record_throttle(
    conn: AsyncConnection, task: SinkTask, error: str, *, retry_at: datetime, now: datetime
) -> bool:
    """The store asked for less traffic: due again at ``retry_at`` with no attempt spent
    and one more throttle in a row. False when the lease or the version moved on."""
    return await _fenced_write(
        conn,
        task,
        update(_s).values(
            throttles=task.throttles + 1,
            next_attempt_at=retry_at,
            last_error=f"throttled: {error}"[:MAX_ERROR],
            **_UNLEASED,
        ),
        now,
    )


async def release(conn: AsyncConnection, task: SinkTask, *, now: datetime) -> None:
    """Let go of a row whose version changed while it was written: it stays pending, due
    at once, for the next round to mirror what is current."""
    await conn.execute(
        update(_s)
        .where(_s.c.id == task.id, _s.c.lease_token == task.lease_token)
        .values(updated_at=now, **_UNLEASED)
    )


# ------------------------------------------------------------------ progress


async def progress(
    conn: AsyncConnection, batch_ids: Sequence[str]
) -> dict[str, dict[str, SinkProgress]]:
    """Per batch, per sink: how many of its documents' versions are pending, done and
    failed in the store, and the latest error (the statements are the status reads')."""
    return await status_reads.sink_progress(ConnectionRows(conn), batch_ids)
