"""Deleting a batch: its rows in every table and its stored files, in short steps.

A batch of a million documents has millions of rows (documents, attempts, events, chunks,
full-text rows, vectors). Deleting them in one transaction would hold SQLite's write lock
for many seconds and stop every worker, so deletion goes in steps:

1. **start** (one transaction): the batch is marked ``deleting_at`` and cancelled. From then on
   it is hidden from every read (it answers "no such batch"), nothing claims its documents,
   and triggers (migration 0012) refuse to add a document to it and skip its documents in
   any claim. Documents still running are refused (:class:`Conflict`) unless ``force``,
   which cancels them first: their workers' leases are gone, so what they finish is dropped.
2. **steps**, each its own transaction removing at most ``step_rows`` rows of one table
   (chunks take their vectors and full-text rows with them): chunks, attempts, tus uploads,
   documents, events. Chunks go through ``index.remove_chunks``, which turns the sink rows
   of their documents into removals in the same transaction: the rows have no foreign key,
   so they outlive the batch until the sink stage has deleted its points from the stores.
   Files are removed between the transactions, never inside one.
3. **finish** (one transaction): the batch row and its create-request row.

A deletion that dies half-way leaves the batch marked: running the deletion again (or
:func:`unfinished` and a resume) continues where it stopped, and every step is idempotent.

Only files inside the storage folder are removed (uploads stored by the API), and only
those no other batch names; a server path a batch was submitted from is never touched.
``embedding_cache`` is not the batch's: it is keyed by text and model and shared by every
batch, so it stays. A document of another batch that this batch's run superseded keeps its
``superseded_by`` mark (its chunks were replaced, and are gone now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, ScalarSelect, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger import storage
from ledger.db.backends import backend_of
from ledger.db.models import (
    attempts,
    batch_requests,
    batches,
    chunks,
    documents,
    events,
    uploads,
)
from ledger.errors import Conflict, InvalidInput, NotFound, ProcessingError
from ledger.index import chunks as index
from ledger.settings import Settings
from ledger.states import BatchState, DocumentStatus
from ledger.storage import member_objects, objects
from ledger.storage.urls import ObjectUrl, is_object_url

if TYPE_CHECKING:
    from ledger.db.runner import Runner

log = logging.getLogger(__name__)


@dataclass
class DeletionReport:
    """What one deletion removed: rows per table and stored files."""

    batch_id: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    steps: int = 0
    cancelled: int = 0

    def add(self, table: str, count: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + count


# ------------------------------------------------------------------ start and finish


async def start(
    conn: AsyncConnection, batch_id: str, *, owner: str | None, force: bool, now: datetime
) -> int:
    """Mark the batch as being deleted (idempotent); returns running documents cancelled.

    NotFound for no such batch or another tenant's; Conflict while documents run, unless
    ``force``.
    """
    query = select(batches.c.owner, batches.c.n_running, batches.c.deleting_at).where(
        batches.c.id == batch_id
    )
    row = (await conn.execute(backend_of(conn).lock_rows(query, of=batches))).first()
    if row is None or (owner is not None and row.owner != owner):
        raise NotFound(f"no batch {batch_id!r}")
    if row.deleting_at is not None:
        return 0  # an interrupted deletion: carry on
    cancelled = 0
    if row.n_running:
        if not force:
            raise Conflict(
                f"batch {batch_id!r} has {row.n_running} running documents: pause it and "
                "wait, or force the deletion (running documents are cancelled first)"
            )
        result = await conn.execute(
            update(documents)
            .where(
                documents.c.batch_id == batch_id,
                documents.c.status == DocumentStatus.RUNNING.value,
            )
            .values(
                status=DocumentStatus.CANCELLED.value,
                lease_owner=None,
                lease_token=None,
                lease_expires_at=None,
                finished_at=now,
                updated_at=now,
            )
        )
        cancelled = result.rowcount
    await conn.execute(
        update(batches)
        .where(batches.c.id == batch_id)
        .values(
            state=BatchState.CANCELLED.value,
            pause_reason=None,
            deleting_at=now,
            updated_at=now,
        )
    )
    return cancelled


async def finish(conn: AsyncConnection, batch_id: str) -> tuple[int, int]:
    """Remove the batch row and its create request (after every step found nothing left):
    (batches, batch_requests) rows removed."""
    requests = await conn.execute(
        delete(batch_requests).where(batch_requests.c.batch_id == batch_id)
    )
    result = await conn.execute(
        delete(batches).where(batches.c.id == batch_id, batches.c.deleting_at.is_not(None))
    )
    return result.rowcount, requests.rowcount


async def unfinished(conn: AsyncConnection, *, owner: str | None) -> list[str]:
    """Ids of batches whose deletion started and did not finish."""
    query = select(batches.c.id).where(batches.c.deleting_at.is_not(None))
    if owner is not None:
        query = query.where(batches.c.owner == owner)
    return list((await conn.execute(query.order_by(batches.c.id))).scalars())


# ------------------------------------------------------------------ bounded steps


def _first(
    id_column: ColumnElement[Any], batch_column: ColumnElement[Any], batch_id: str, limit: int
) -> ScalarSelect[Any]:
    """The ids of the batch's first ``limit`` rows of a table (its (batch_id, id) index)."""
    query = select(id_column).where(batch_column == batch_id).order_by(id_column).limit(limit)
    return query.scalar_subquery()


async def delete_chunks(
    conn: AsyncConnection, batch_id: str, limit: int, now: datetime | None = None
) -> tuple[int, int]:
    """Remove up to ``limit`` of the batch's chunks and their vectors, through
    ``index.remove_chunks`` (so sinks mirroring their documents remove their points):
    (chunks, vectors)."""
    first = _first(chunks.c.id, chunks.c.batch_id, batch_id, limit)
    owners = select(chunks.c.document_id).where(chunks.c.id.in_(first)).distinct()
    ids = list((await conn.execute(owners)).scalars())
    # The batch's first chunks by id are the first chunks by id of their documents.
    return await index.remove_chunks(conn, ids, now=now, limit=limit)


async def delete_attempts(conn: AsyncConnection, batch_id: str, limit: int) -> int:
    first = _first(attempts.c.id, attempts.c.batch_id, batch_id, limit)
    return (await conn.execute(delete(attempts).where(attempts.c.id.in_(first)))).rowcount


async def delete_events(conn: AsyncConnection, batch_id: str, limit: int) -> int:
    first = _first(events.c.id, events.c.batch_id, batch_id, limit)
    return (await conn.execute(delete(events).where(events.c.id.in_(first)))).rowcount


async def uploads_to_remove(
    conn: AsyncConnection, batch_id: str, limit: int
) -> list[tuple[str, str]]:
    """(id, file) of up to ``limit`` resumable uploads made for the batch, by its owner; the
    file is "" when another batch names it (it stays)."""
    owner = select(batches.c.owner).where(batches.c.id == batch_id).scalar_subquery()
    query = (
        select(uploads.c.id, uploads.c.path)
        .where(uploads.c.batch_id == batch_id, uploads.c.owner.is_not_distinct_from(owner))
        .order_by(uploads.c.id)
        .limit(limit)
    )
    found = [(r.id, r.path) for r in (await conn.execute(query)).all()]
    kept = await _unshared(conn, batch_id, {path for _, path in found})
    return [(i, path if path in kept else "") for i, path in found]


async def delete_uploads(conn: AsyncConnection, ids: Sequence[str]) -> int:
    return (await conn.execute(delete(uploads).where(uploads.c.id.in_(list(ids))))).rowcount


async def documents_to_remove(
    conn: AsyncConnection,
    batch_id: str,
    limit: int,
    storage_dir: Path,
    storage_url: str | None = None,
) -> tuple[list[int], list[str]]:
    """Up to ``limit`` of the batch's document ids, and the stored files (and objects the
    API stored under ``storage_url``) among their sources that no other batch names (so
    they may be removed)."""
    # Newest first: a child document (an archive's member) always has a larger id than its
    # parent, so it is listed, and its extracted file removed, before the parent's deletion
    # would take it along by the cascade.
    query = (
        select(documents.c.id, documents.c.source)
        .where(documents.c.batch_id == batch_id)
        .order_by(documents.c.id.desc())
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    stored = {
        r.source
        for r in rows
        if _removable(r.source, storage_dir) or _stored_object(r.source, storage_url)
    }
    return [r.id for r in rows], await _unshared(conn, batch_id, stored)


async def _unshared(conn: AsyncConnection, batch_id: str, paths: set[str]) -> list[str]:
    """The ``paths`` that no other batch names, as a document's source or an upload's file
    (a server path that happens to lie in the storage folder must not lose its file)."""
    if not paths:
        return []
    listed = sorted(paths)
    by_documents = select(documents.c.source).where(
        documents.c.source.in_(listed), documents.c.batch_id != batch_id
    )
    by_uploads = select(uploads.c.path).where(
        uploads.c.path.in_(listed), uploads.c.batch_id != batch_id
    )
    for query in (by_documents, by_uploads):
        paths -= set((await conn.execute(query)).scalars())
    return sorted(paths)


async def delete_documents(
    conn: AsyncConnection, batch_id: str, ids: Sequence[int], now: datetime | None = None
) -> int:
    """Remove these documents of the batch; a sink still mirroring one (a document with no
    chunks has a sink row too) is told to remove its points first, in this transaction."""
    await index.remove_chunks(conn, ids, now=now)
    query = delete(documents).where(documents.c.batch_id == batch_id, documents.c.id.in_(list(ids)))
    return (await conn.execute(query)).rowcount


# ------------------------------------------------------------------ files


def _removable(path: str, storage_dir: Path) -> bool:
    """A file inside the storage folder (not the folder itself, not its marker)."""
    if not storage.is_stored(path, storage_dir):
        return False
    root = os.path.normpath(os.path.abspath(storage_dir))
    normal = os.path.normpath(os.path.abspath(path))
    return normal != root and normal != os.path.join(root, storage.MARKER)


def _stored_object(source: str, storage_url: str | None) -> bool:
    """An object the API stored (under ``LEDGER_STORAGE_URL``), not a caller's own object."""
    if storage_url is None or not is_object_url(source):
        return False
    try:
        return ObjectUrl.parse(source).within(ObjectUrl.parse(storage_url))
    except InvalidInput:
        return False


def remove_stored(paths: Sequence[str], settings: Settings) -> int:
    """Remove these stored files and stored objects (see :func:`remove_files`); objects
    outside ``LEDGER_STORAGE_URL`` and files outside the storage folder are left alone.
    Returns how many were removed (objects: how many deletions the store accepted)."""
    objects_there = [p for p in paths if _stored_object(p, settings.storage_url)]
    removed = remove_files([p for p in paths if not is_object_url(p)], settings.storage)
    if objects_there:
        s3 = objects.client_for(settings)
        for url in objects_there:
            try:
                objects.delete(s3, ObjectUrl.parse(url))
                removed += 1
            except ProcessingError as exc:
                log.warning("could not remove stored object %s: %s", url, exc.message)
    return removed


def remove_files(paths: Sequence[str], storage_dir: Path) -> int:
    """Remove these stored files, and folders they leave empty below the storage folder.

    Anything outside the storage folder is left alone whatever the caller passes. Returns
    how many files were removed (a file already gone is not counted and not an error).
    """
    root = os.path.normpath(os.path.abspath(storage_dir))
    removed = 0
    folders: set[str] = set()
    for path in paths:
        if not _removable(path, storage_dir):
            continue
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove stored file %s: %s", path, exc)
        folders.add(os.path.dirname(os.path.normpath(os.path.abspath(path))))
    for folder in sorted(folders, key=len, reverse=True):
        # Up to, never including, the storage folder; stop at the first one not empty.
        while folder.startswith(root + os.sep) and folder != root:
            try:
                os.rmdir(folder)
            except OSError:
                break
            folder = os.path.dirname(folder)
    return removed


async def member_parents(conn: AsyncConnection, ids: Sequence[int]) -> list[int]:
    """Those of ``ids`` whose member prefix may hold objects: documents with children, and
    documents started and not done (an attempt that expanded them never committed). A done
    parent's prefix may also hold what an attempt that lost its lease wrote and could not
    remove (each attempt has a folder of its own there). A released attempt is not
    counted, so ``started_at`` says it ran too."""
    children = documents.alias("children")
    has_children = select(children.c.id).where(children.c.parent_id == documents.c.id).exists()
    query = select(documents.c.id).where(
        documents.c.id.in_(list(ids)),
        or_(documents.c.attempts > 0, documents.c.started_at.is_not(None)),
        or_(documents.c.status != DocumentStatus.DONE.value, has_children),
    )
    return list((await conn.execute(query)).scalars())


def remove_member_folders(document_ids: Sequence[int], storage_dir: Path) -> int:
    """Remove the member folders of these documents (an archive's extracted files in each
    attempt's folder, and what attempts killed or refused at their finish left there); how
    many files were in them."""
    removed = 0
    for document_id in document_ids:
        folder = storage.members_dir(storage_dir, document_id)
        if not os.path.isdir(folder):
            continue  # the common case: not an archive
        files = []
        for parent, _, names in os.walk(folder, onerror=_walk_failed):
            files += [os.path.join(parent, name) for name in names]
        removed += remove_files(files, storage_dir)
        for empty, _, _ in os.walk(folder, topdown=False):  # attempt folders left empty
            with contextlib.suppress(OSError):
                os.rmdir(empty)
    return removed


def _walk_failed(exc: OSError) -> None:
    log.warning("could not list member folder %s: %s", exc.filename, exc)


# ------------------------------------------------------------------ the whole deletion

Progress = Callable[[DeletionReport], None]


async def delete_batch(
    db: Runner,
    batch_id: str,
    *,
    owner: str | None,
    force: bool,
    step_rows: int,
    on_step: Progress | None = None,
) -> DeletionReport:
    """Delete the batch and everything of it, one bounded transaction at a time.

    Resumable: called again after an interruption, it finishes what is left.
    """
    report = DeletionReport(batch_id)
    store = db.settings.storage

    async def begin(conn: AsyncConnection, now: datetime) -> int:
        return await start(conn, batch_id, owner=owner, force=force, now=now)

    report.cancelled = await db.run(begin)
    log.info("deleting batch", extra={"batch_id": batch_id, "cancelled": report.cancelled})

    def stepped(table: str, count: int) -> None:
        report.add(table, count)
        report.steps += 1
        if on_step is not None:
            on_step(report)

    async def chunk_step(conn: AsyncConnection, now: datetime) -> tuple[int, int]:
        return await delete_chunks(conn, batch_id, step_rows, now)

    while True:
        removed, vectors = await db.run(chunk_step)
        report.add("chunk_vectors", vectors)
        stepped("chunks", removed)
        if not removed:
            break

    await _table_steps(db, "attempts", delete_attempts, batch_id, step_rows, stepped)

    async def upload_batch(conn: AsyncConnection, now: datetime) -> list[tuple[str, str]]:
        return await uploads_to_remove(conn, batch_id, step_rows)

    while found := await db.run(upload_batch, write=False):
        files = [p for _, p in found if p]
        report.files += await asyncio.to_thread(remove_stored, files, db.settings)
        ids = [i for i, _ in found]

        async def drop_uploads(conn: AsyncConnection, now: datetime, ids: list[str] = ids) -> int:
            return await delete_uploads(conn, ids)

        stepped("uploads", await db.run(drop_uploads))

    async def document_batch(conn: AsyncConnection, now: datetime) -> tuple[list[int], list[str]]:
        return await documents_to_remove(conn, batch_id, step_rows, store, db.settings.storage_url)

    while True:
        doc_ids, files = await db.run(document_batch, write=False)
        if not doc_ids:
            break
        report.files += await asyncio.to_thread(remove_stored, files, db.settings)
        report.files += await asyncio.to_thread(remove_member_folders, doc_ids, store)
        if db.settings.storage_url is not None:

            async def unadopted(
                conn: AsyncConnection, now: datetime, ids: list[int] = doc_ids
            ) -> list[int]:
                return await member_parents(conn, ids)

            parents = await db.run(unadopted, write=False)
            removed = await asyncio.to_thread(member_objects.remove_unadopted, db.settings, parents)
            report.files += removed

        async def drop_documents(
            conn: AsyncConnection, now: datetime, ids: list[int] = doc_ids
        ) -> int:
            return await delete_documents(conn, batch_id, ids, now)

        stepped("documents", await db.run(drop_documents))

    await _table_steps(db, "events", delete_events, batch_id, step_rows, stepped)

    async def last(conn: AsyncConnection, now: datetime) -> tuple[int, int]:
        return await finish(conn, batch_id)

    removed, requests = await db.run(last)
    report.add("batch_requests", requests)
    stepped("batches", removed)
    log.info("deleted batch", extra={"batch_id": batch_id, "rows": report.rows})
    return report


async def _table_steps(
    db: Runner,
    table: str,
    step: Callable[[AsyncConnection, str, int], Awaitable[int]],
    batch_id: str,
    step_rows: int,
    stepped: Callable[[str, int], None],
) -> None:
    async def work(conn: AsyncConnection, now: datetime) -> int:
        return await step(conn, batch_id, step_rows)

    while True:
        count = await db.run(work)
        stepped(table, count)
        if not count:
            return
