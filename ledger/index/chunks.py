"""The chunk index and the dedup ledger: chunks in, "is this already indexed?" out.

Rules (docs/ingest.md):

- Chunks are written only by the finish (:mod:`ledger.index.outcome_store`), inside the
  transaction that marks their document done, from its outcome's artifacts, so a document
  is done exactly when all its chunks are stored, and a worker that lost its lease stores
  nothing.
- Per owner and source path only one document holds chunks: the one whose run was
  recorded last. Storing a document's chunks deletes those of every other document of the
  same owner and source and marks them ``superseded_by`` it, in the same transaction, so a
  search never returns the text of an older version of a file.
- Chunks leave the index only through :func:`remove_chunks` (a newer run of the source, a
  retired document, a deleted batch), so whatever must follow a removal (vectors, and
  outbound copies) is done in one place.
- A retired document (its source file gone, ``removed_at`` set) holds nothing.
- The dedup key is the SHA-256 of the content, scoped by owner. A source is *unchanged*
  when a document of the same owner and source holds chunks and its recorded size,
  modification time and (for an object) ETag match (``ledger.index.unchanged``); content
  is a *duplicate* when any document of the owner that holds chunks has the same SHA-256.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import skip_reason
from ledger.db import direct
from ledger.db.models import batches, chunk_vectors, chunks, documents
from ledger.db.prepared import inline, prepared, time_param
from ledger.index import sink_rows, vectors
from ledger.index.unchanged import etag_of, unchanged_clause
from ledger.model import JSON, IndexedDocument
from ledger.states import DocumentStatus

PARAMS_CHUNK = 1_000
SKIP_PAGE = 5_000  # new documents looked at per query when skipping unchanged ones


def _owner_of(batch_id: Any) -> Any:
    return select(batches.c.owner).where(batches.c.id == batch_id).scalar_subquery()


def _holders(batch_id: Any, model: Any = None) -> Any:
    """Documents of the same owner as ``batch_id`` that hold their source's chunks (with
    their ``model`` vectors, when a model is given)."""
    query = (
        select(
            documents.c.id,
            documents.c.batch_id,
            documents.c.source,
            documents.c.source_size,
            documents.c.source_mtime_ns,
            documents.c.source_sha256,
            documents.c.result,
            documents.c.meta,
        )
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(
            batches.c.owner.is_not_distinct_from(_owner_of(batch_id)),
            documents.c.status == inline(DocumentStatus.DONE.value),
            documents.c.superseded_by.is_(None),
            documents.c.removed_at.is_(None),
        )
    )
    return query if model is None else query.where(vectors.has_vectors(model))


def _indexed(row: Any) -> IndexedDocument:
    result = row.result or {}
    count = result.get("chunks") if isinstance(result, dict) else None
    return IndexedDocument(
        id=row.id,
        batch_id=row.batch_id,
        source=row.source,
        size=row.source_size,
        mtime_ns=row.source_mtime_ns,
        sha256=row.source_sha256,
        chunks=count if isinstance(count, int) else None,
        etag=etag_of(row.meta),
    )


def _lookup(column: Any, *, newest: bool, excluding: bool, with_model: bool) -> Any:
    """One holder of a source or a content: every value bound, so it is built once (each
    document's dedup check runs it; see ``prepared``)."""
    model = bindparam("p_model", type_=String()) if with_model else None
    query = _holders(bindparam("p_batch", type_=String()), model).where(
        column == bindparam("p_key", type_=String())
    )
    if excluding:
        query = query.where(documents.c.id != bindparam("p_exclude", type_=BigInteger()))
    order = documents.c.id.desc() if newest else documents.c.id
    return query.order_by(order).limit(1)


async def _holder(
    conn: AsyncConnection,
    column: Any,
    key: str,
    *,
    newest: bool,
    batch_id: str,
    exclude_id: int | None,
    model: str | None,
) -> IndexedDocument | None:
    shape = (column.name, newest, exclude_id is not None, model is not None)
    statement = prepared(
        conn,
        ("holder", *shape),
        lambda: _lookup(
            column, newest=newest, excluding=exclude_id is not None, with_model=model is not None
        ),
    )
    params: dict[str, Any] = {"p_batch": batch_id, "p_key": key}
    if exclude_id is not None:
        params["p_exclude"] = exclude_id
    if model is not None:
        params["p_model"] = model
    row = (await direct.execute(conn, statement, params)).first()
    return _indexed(row) if row else None


async def indexed_source(
    conn: AsyncConnection,
    *,
    batch_id: str,
    source: str,
    exclude_id: int | None = None,
    model: str | None = None,
) -> IndexedDocument | None:
    """The document holding the chunks of ``source`` for the owner of ``batch_id`` (and
    their ``model`` vectors, when a model is given)."""
    return await _holder(
        conn, documents.c.source, source, newest=True, batch_id=batch_id,
        exclude_id=exclude_id, model=model,
    )  # fmt: skip


async def indexed_content(
    conn: AsyncConnection,
    *,
    batch_id: str,
    sha256: str,
    exclude_id: int | None = None,
    model: str | None = None,
) -> IndexedDocument | None:
    """A document of the owner of ``batch_id`` that holds chunks of content ``sha256``
    (and their ``model`` vectors, when a model is given)."""
    return await _holder(
        conn, documents.c.source_sha256, sha256.lower(), newest=False, batch_id=batch_id,
        exclude_id=exclude_id, model=model,
    )  # fmt: skip


def _unchanged_new_documents(with_model: bool) -> Any:
    """The documents a submission just added to a batch (pending, never attempted, created
    at ``p_now``) whose source is held, for the batch's owner, by a document with a known
    SHA-256 and the same facts (``ledger.index.unchanged``): the processor's first dedup
    check, as one join. A page of them after ``p_after``, in id order."""
    new = documents.alias("new")
    holder = documents.alias("holder")
    holder_batch = batches.alias("holder_batch")
    batch_id = bindparam("p_batch", type_=String())
    query = (
        select(new.c.id, holder.c.id.label("holder_id"), holder.c.source_sha256)
        .select_from(
            new.join(holder, holder.c.source == new.c.source).join(
                holder_batch, holder_batch.c.id == holder.c.batch_id
            )
        )
        .where(
            new.c.batch_id == batch_id,
            new.c.status == inline(DocumentStatus.PENDING.value),
            new.c.attempts == 0,
            # New rows are due at once: with it, the (batch_id, status, next_attempt_at)
            # index finds this submission's rows, not every pending row of the batch.
            new.c.next_attempt_at == time_param("p_now"),
            new.c.created_at == time_param("p_now"),
            new.c.id > bindparam("p_after", type_=BigInteger()),
            holder.c.id != new.c.id,
            holder.c.status == inline(DocumentStatus.DONE.value),
            holder.c.superseded_by.is_(None),
            holder.c.removed_at.is_(None),
            unchanged_clause(holder, new),
            holder_batch.c.owner.is_not_distinct_from(_owner_of(batch_id)),
        )
        .order_by(new.c.id)
        .limit(SKIP_PAGE)
    )
    if with_model:
        query = query.where(vectors.has_vectors(bindparam("p_model", type_=String()), holder.c.id))
    return query


def _skip_update() -> Any:
    return (
        update(documents)
        .where(
            documents.c.id == bindparam("b_id"),
            documents.c.status == inline(DocumentStatus.PENDING.value),
        )
        .values(
            status=DocumentStatus.SKIPPED.value,
            finished_at=time_param("b_now"),
            updated_at=time_param("b_now"),
            result=bindparam("b_result", type_=documents.c.result.type),
        )
    )


def skip_result(holder_id: int, sha256: str) -> JSON:
    """What a document skipped at submit as unchanged records: what the ingest processor
    records when it decides the same."""
    return {
        "reason": skip_reason("unchanged", holder_id),
        "duplicate_of": holder_id,
        "sha256": sha256,
    }


async def skip_unchanged_new(
    conn: AsyncConnection, *, batch_id: str, now: datetime, model: str | None
) -> int:
    """Mark ``skipped`` the documents this submission (at ``now``) added to ``batch_id``
    whose content is indexed and unchanged (see ``_unchanged_new_documents``), each with
    its reason and ``duplicate_of``: nothing is read or claimed for them. They record no
    attempt (none was made). Returns how many were skipped."""
    query = prepared(
        conn,
        ("unchanged_new", model is not None),
        lambda: _unchanged_new_documents(model is not None),
    )
    update_statement = prepared(conn, ("skip_new",), _skip_update)
    params: dict[str, Any] = {"p_batch": batch_id, "p_now": now, "p_after": 0}
    if model is not None:
        params["p_model"] = model
    skipped = 0
    while True:
        rows = (await conn.execute(query, params)).all()
        if not rows:
            return skipped
        chosen: dict[int, Any] = {}
        for row in rows:  # one holder per owner and source; the newest if ever two
            if row.id not in chosen or row.holder_id > chosen[row.id].holder_id:
                chosen[row.id] = row
        await conn.execute(
            update_statement,
            [
                {
                    "b_id": r.id,
                    "b_now": now,
                    "b_result": skip_result(r.holder_id, r.source_sha256),
                }
                for r in chosen.values()
            ],
        )
        skipped += len(chosen)
        if len(rows) < SKIP_PAGE:
            return skipped
        params["p_after"] = rows[-1].id


async def remove_chunks(
    conn: AsyncConnection,
    document_ids: Sequence[int],
    *,
    now: datetime | None = None,
    limit: int | None = None,
) -> tuple[int, int]:
    """Remove these documents' chunks and vectors, and tell every sink mirroring them to
    remove their points (in this same transaction: see ``ledger.index.sink_rows``). The one
    way chunks leave the index: a newer version superseding, a batch deletion, a source
    that disappeared. With ``limit``, only the first ``limit`` chunks (in id order) go, to
    bound a deletion step; the sinks are told at the first step. Returns (chunks, vectors)
    removed."""
    at = now or datetime.now(UTC)
    removed = vectors_removed = 0
    ids = list(document_ids)
    for start in range(0, len(ids), PARAMS_CHUNK):
        part = ids[start : start + PARAMS_CHUNK]
        own = select(chunks.c.id).where(chunks.c.document_id.in_(part))
        if limit is not None:
            own = own.order_by(chunks.c.id).limit(limit - removed)
        chosen = list((await conn.execute(own)).scalars())
        for first in range(0, len(chosen), PARAMS_CHUNK):
            block = chosen[first : first + PARAMS_CHUNK]
            vectors_removed += (
                await conn.execute(delete(chunk_vectors).where(chunk_vectors.c.chunk_id.in_(block)))
            ).rowcount
            removed += (await conn.execute(delete(chunks).where(chunks.c.id.in_(block)))).rowcount
        await sink_rows.mark_removed(conn, part, at)
        if limit is not None and removed >= limit:
            break
    return removed, vectors_removed


async def _supersede_others(
    conn: AsyncConnection, *, document_id: int, batch_id: str, source: str, now: datetime | None
) -> int:
    """Delete the chunks of the other documents of this owner and source; mark them."""
    others = [
        row[0]
        for row in (
            await direct.execute(
                conn,
                prepared(
                    conn,
                    ("supersede_others",),
                    lambda: (
                        select(documents.c.id)
                        .join(batches, batches.c.id == documents.c.batch_id)
                        .where(
                            documents.c.source == bindparam("p_source", type_=String()),
                            documents.c.id != bindparam("p_id"),
                            documents.c.superseded_by.is_(None),
                            batches.c.owner.is_not_distinct_from(
                                _owner_of(bindparam("p_batch", type_=String()))
                            ),
                        )
                    ),
                ),
                {"p_source": source, "p_id": document_id, "p_batch": batch_id},
            )
        ).all()
    ]
    await remove_chunks(conn, others, now=now)
    for start in range(0, len(others), PARAMS_CHUNK):
        ids = others[start : start + PARAMS_CHUNK]
        await conn.execute(
            update(documents).where(documents.c.id.in_(ids)).values(superseded_by=document_id)
        )
    return len(others)


def _content_update() -> Any:
    return (
        update(documents)
        .where(documents.c.id == bindparam("p_id"))
        .values(
            source_sha256=bindparam("p_sha256", type_=String()),
            source_size=func.coalesce(
                documents.c.source_size, bindparam("p_size", type_=BigInteger())
            ),
            source_mtime_ns=func.coalesce(
                documents.c.source_mtime_ns, bindparam("p_mtime", type_=BigInteger())
            ),
            superseded_by=None,
        )
    )


async def record_content(
    conn: AsyncConnection,
    *,
    document_id: int,
    batch_id: str,
    source: str,
    sha256: str,
    size: int | None,
    mtime_ns: int | None,
    supersede: bool,
    now: datetime | None = None,
) -> None:
    """Record what a document's source turned out to contain (size and mtime only where
    submit left them unknown); with ``supersede``, it replaces older documents of its source."""
    await direct.execute(
        conn,
        prepared(conn, ("record_content",), _content_update),
        {"p_id": document_id, "p_sha256": sha256.lower(), "p_size": size, "p_mtime": mtime_ns},
    )
    if supersede:
        await _supersede_others(
            conn, document_id=document_id, batch_id=batch_id, source=source, now=now
        )


async def chunk_count(conn: AsyncConnection, document_id: int) -> int:
    return int(
        (
            await conn.execute(
                select(func.count()).select_from(chunks).where(chunks.c.document_id == document_id)
            )
        ).scalar_one()
    )


def owner_matches(owner: str | None) -> Any:
    """The WHERE clause scoping a query on ``batches`` to one owner (None: local use), less
    batches being deleted (their documents and chunks are going)."""
    return and_(batches.c.owner.is_not_distinct_from(owner), batches.c.deleting_at.is_(None))


__all__ = [
    "chunk_count",
    "indexed_content",
    "indexed_source",
    "owner_matches",
    "record_content",
    "remove_chunks",
]
