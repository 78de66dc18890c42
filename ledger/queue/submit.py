"""Batches and documents in: one transaction, bulk, idempotent."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import DocumentRow, backend_of
from ledger.db.models import batches, documents
from ledger.errors import Conflict, InvalidInput
from ledger.index.chunks import skip_unchanged_new
from ledger.index.unchanged import ETAG, changed_since, etag_of
from ledger.model import Batch, BatchSpec, SourceSpec, SubmitResult, UnchangedSkip
from ledger.queue.endings import mark_completed
from ledger.queue.events import record_events
from ledger.queue.rows import batch_from_row
from ledger.states import BatchState, DocumentStatus

INSERT_CHUNK = 5_000  # rows per INSERT: bounded memory however many sources come in
MAX_BATCH_ID = 200


def new_batch_id() -> str:
    """A unique id that sorts by creation time: 12 hex digits of milliseconds, 12 random."""
    return f"b{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def _check_batch_id(batch_id: str) -> None:
    if not batch_id or len(batch_id) > MAX_BATCH_ID:
        raise InvalidInput(f"batch id must be 1 to {MAX_BATCH_ID} characters")
    if any(ch.isspace() or ord(ch) < 32 or ch in "/\\?#%" for ch in batch_id):
        raise InvalidInput("batch id must not contain spaces, control characters or / \\ ? # %")


def _same_settings(row: Batch, spec: BatchSpec, max_attempts: int) -> list[str]:
    differences = []
    if row.processor != spec.processor:
        differences.append(f"processor {row.processor!r} (asked: {spec.processor!r})")
    if row.options != spec.options:
        differences.append("options")
    if row.priority != spec.priority:
        differences.append(f"priority {row.priority} (asked: {spec.priority})")
    if row.max_attempts != max_attempts:
        differences.append(f"max_attempts {row.max_attempts} (asked: {max_attempts})")
    return differences


async def load_batch(
    conn: AsyncConnection, batch_id: str, *, for_update: bool = False, deleting: bool = True
) -> Batch | None:
    """The batch row (locked with ``for_update``); without ``deleting``, None for a batch
    whose deletion has started (steering it is as for a batch that does not exist)."""
    query = select(batches).where(batches.c.id == batch_id)
    if not deleting:
        query = query.where(batches.c.deleting_at.is_(None))
    if for_update:
        query = backend_of(conn).lock_rows(query, of=batches)
    row = (await conn.execute(query)).first()
    return batch_from_row(row) if row else None


async def submit(
    conn: AsyncConnection,
    spec: BatchSpec,
    sources: Iterable[SourceSpec],
    *,
    now: datetime,
    default_max_attempts: int,
    skip_unchanged: UnchangedSkip | None = None,
) -> SubmitResult:
    """Create the batch (or find it) and add every source it does not have yet.

    Runs in the caller's transaction, so the batch and all its documents appear together or
    not at all. Resubmitting the same batch id with the same settings is idempotent: known
    sources are left alone, new ones are added. Different settings are a :class:`Conflict`.
    With ``skip_unchanged``, new sources whose content is already indexed, unchanged, are
    ``skipped`` in the same transaction (an unchanged re-run then claims nothing).
    """
    batch_id = spec.id or new_batch_id()
    _check_batch_id(batch_id)
    max_attempts = spec.max_attempts or default_max_attempts
    existing = await load_batch(conn, batch_id, for_update=True)
    if existing is not None:
        if existing.owner != spec.owner:
            raise Conflict(f"batch id {batch_id!r} is not available")
        differences = _same_settings(existing, spec, max_attempts)
        if differences:
            raise Conflict(
                f"batch {batch_id!r} already exists with different settings: "
                + ", ".join(differences)
            )
        if existing.state == BatchState.CANCELLED:
            # (Also a batch being deleted: deletion cancels it first.)
            raise Conflict(f"batch {batch_id!r} is cancelled; submit a new batch")
        before = existing.total
    else:
        await conn.execute(
            insert(batches).values(
                id=batch_id,
                name=spec.name,
                owner=spec.owner,
                state=BatchState.ACTIVE.value,
                priority=spec.priority,
                processor=spec.processor,
                options=spec.options,
                max_attempts=max_attempts,
                roots=list(spec.roots) if spec.roots else None,
                created_at=now,
                updated_at=now,
            )
        )
        before = 0

    submitted, requeued = await _insert_documents(
        conn, batch_id, sources, now, known_batch=existing is not None
    )
    batch = await load_batch(conn, batch_id)
    assert batch is not None
    added = batch.total - before
    skipped = 0
    if skip_unchanged is not None and added:
        skipped = await skip_unchanged_new(
            conn, batch_id=batch_id, now=now, model=skip_unchanged.model
        )
        if skipped:
            batch = await load_batch(conn, batch_id)
            assert batch is not None
    if (added > skipped or requeued) and batch.completed_at is not None:
        await conn.execute(
            update(batches)
            .where(batches.c.id == batch_id)
            .values(completed_at=None, updated_at=now)
        )
        batch = await load_batch(conn, batch_id)
        assert batch is not None
    if added > skipped and batch.state == BatchState.ACTIVE:
        await backend_of(conn).announce_due(conn, [batch_id])
    if existing is None:
        await record_events(conn, now, [(batch_id, None, "batch_created", {"documents": added})])
    elif added:
        await record_events(conn, now, [(batch_id, None, "documents_added", {"documents": added})])
    if skipped:
        data = {"documents": skipped, "reason": "unchanged"}
        await record_events(conn, now, [(batch_id, None, "documents_skipped", data)])
        if batch.complete and batch.completed_at is None:
            await mark_completed(conn, [batch_id], now)
            batch = await load_batch(conn, batch_id)
            assert batch is not None
    if requeued:
        await record_events(
            conn, now, [(batch_id, None, "documents_requeued", {"documents": requeued})]
        )
    return SubmitResult(
        batch=batch,
        created=existing is None,
        added=added,
        known=submitted - added,
        requeued=requeued,
        skipped=skipped,
    )


async def _insert_documents(
    conn: AsyncConnection,
    batch_id: str,
    sources: Iterable[SourceSpec],
    now: datetime,
    *,
    known_batch: bool,
) -> tuple[int, int]:
    """Insert the new sources; in a known batch, bring changed known sources up to date.
    Returns (sources submitted, documents requeued)."""
    submitted = 0
    requeued = 0
    iterator = iter(sources)
    while chunk := list(itertools.islice(iterator, INSERT_CHUNK)):
        rows: list[DocumentRow] = [(s.source, s.size, s.mtime_ns, s.sha256, s.meta) for s in chunk]
        await backend_of(conn).insert_documents(conn, batch_id, now, rows)
        submitted += len(rows)
        if known_batch:
            requeued += await _update_changed(conn, batch_id, chunk, now)
    return submitted, requeued


# Finished documents whose source changed are processed again; pending ones only take the
# new facts (process_file checks them); running ones are left to finish (resubmit later).
_REQUEUE_FROM = (
    DocumentStatus.DONE.value,
    DocumentStatus.SKIPPED.value,
    DocumentStatus.FAILED.value,
)


async def _update_changed(
    conn: AsyncConnection, batch_id: str, chunk: list[SourceSpec], now: datetime
) -> int:
    """Resubmission of sources the batch already has: where the size, modification time or
    SHA-256 given now differ from those recorded (or the document was retired: its file
    is back), record the new ones, and put done, skipped and failed documents back to
    pending with a fresh count of attempts. Their chunks stay searchable until the new run
    replaces them (or until a newer document of the same source does). Returns how many
    documents went back to pending."""
    by_source = {s.source: s for s in chunk}
    rows = (
        await conn.execute(
            backend_of(conn).lock_rows(
                select(
                    documents.c.id,
                    documents.c.source,
                    documents.c.status,
                    documents.c.source_size,
                    documents.c.source_mtime_ns,
                    documents.c.source_sha256,
                    documents.c.meta,
                    documents.c.removed_at,
                ).where(
                    documents.c.batch_id == batch_id,
                    documents.c.source.in_(list(by_source)),
                    documents.c.status.in_([*_REQUEUE_FROM, DocumentStatus.PENDING.value]),
                ),
                of=documents,
            )
        )
    ).all()
    # A retired document (its file was gone) whose file is back is processed again, even
    # when the file came back exactly as it was: its chunks were removed.
    changed = [
        (r, by_source[r.source])
        for r in rows
        if r.removed_at is not None or changed_since(by_source[r.source], r)
    ]
    if not changed:
        return 0
    facts = [
        {
            "b_id": r.id,
            "b_size": spec.size,
            "b_mtime": spec.mtime_ns,
            "b_sha": spec.sha256.lower() if spec.sha256 else None,
            # An object's new ETag replaces the recorded one; a file keeps its meta.
            "b_meta": {**(r.meta or {}), ETAG: etag_of(spec.meta)}
            if etag_of(spec.meta)
            else r.meta,
        }
        for r, spec in changed
    ]
    await conn.execute(
        update(documents)
        .where(documents.c.id == bindparam("b_id"))
        .values(
            source_size=bindparam("b_size"),
            source_mtime_ns=bindparam("b_mtime"),
            source_sha256=bindparam("b_sha"),
            meta=bindparam("b_meta", type_=documents.c.meta.type),
            updated_at=now,
        ),
        facts,
    )
    again = [r.id for r, _ in changed if r.status in _REQUEUE_FROM]
    if again:
        await conn.execute(
            update(documents)
            .where(documents.c.id.in_(again), documents.c.status.in_(_REQUEUE_FROM))
            .values(
                status=DocumentStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                error_code=None,
                error_message=None,
                finished_at=None,
                removed_at=None,
                updated_at=now,
            )
        )
    return len(again)
