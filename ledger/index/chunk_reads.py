"""Reading the chunk index out: a batch's chunks in id order, one document's in order.

Pages are keyset-paged (after a chunk id, or after an ordinal within a document), each a
bounded query, so a caller can stream a batch of any size in bounded memory. Every read is
scoped to the batch's owner. A chunk names its source as people know it: for an upload,
the file name it was uploaded with, never the path it is stored under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import batches, chunk_vectors, chunks, documents
from ledger.errors import NotFound
from ledger.index.citations import source_name
from ledger.index.vectors import from_bytes, text_sha256
from ledger.queue.progress import get_batch

MAX_PAGE = 1_000


@dataclass(frozen=True)
class ChunkRecord:
    """One chunk, with where it comes from (for citations) and its content hashes."""

    chunk_id: int
    document_id: int
    batch_id: str
    ordinal: int
    text: str
    page: int | None
    char_start: int
    char_end: int
    source_name: str  # the path, or for an upload the file name it came with
    document_sha256: str | None
    text_sha256: str  # SHA-256 of the text (UTF-8): its key in the embedding cache
    vectors: dict[str, list[float]] | None  # model -> unit vector; None unless asked for


def _select() -> Any:
    return (
        select(
            chunks.c.id,
            chunks.c.document_id,
            chunks.c.batch_id,
            chunks.c.ordinal,
            chunks.c.text,
            chunks.c.page,
            chunks.c.char_start,
            chunks.c.char_end,
            documents.c.source,
            documents.c.meta,
            documents.c.source_sha256,
            batches.c.roots,
        )
        .join(documents, documents.c.id == chunks.c.document_id)
        .join(batches, batches.c.id == chunks.c.batch_id)
    )


def _scoped(query: Any, owner: str | None) -> Any:
    return query if owner is None else query.where(batches.c.owner == owner)


async def _records(
    conn: AsyncConnection, rows: list[Any], *, vectors: bool, model: str | None
) -> list[ChunkRecord]:
    found: dict[int, dict[str, list[float]]] = {}
    if vectors and rows:
        query = select(chunk_vectors.c.chunk_id, chunk_vectors.c.model, chunk_vectors.c.vector)
        query = query.where(chunk_vectors.c.chunk_id.in_([r.id for r in rows]))
        if model is not None:
            query = query.where(chunk_vectors.c.model == model)
        for v in (await conn.execute(query)).all():
            found.setdefault(v.chunk_id, {})[v.model] = from_bytes(v.vector).tolist()
    return [
        ChunkRecord(
            chunk_id=r.id,
            document_id=r.document_id,
            batch_id=r.batch_id,
            ordinal=r.ordinal,
            text=r.text,
            page=r.page,
            char_start=r.char_start,
            char_end=r.char_end,
            source_name=source_name(r.source, r.meta, r.roots),
            document_sha256=r.source_sha256,
            text_sha256=text_sha256(r.text),
            vectors=found.get(r.id, {}) if vectors else None,
        )
        for r in rows
    ]


async def batch_chunks(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    after: int,
    limit: int,
    vectors: bool = False,
    model: str | None = None,
) -> list[ChunkRecord]:
    """Up to ``limit`` chunks of the batch with an id above ``after``, in id order;
    :class:`NotFound` for a batch that is not the owner's."""
    await get_batch(conn, batch_id, owner=owner)
    query = _scoped(_select(), owner).where(chunks.c.batch_id == batch_id, chunks.c.id > after)
    rows = (await conn.execute(query.order_by(chunks.c.id).limit(min(limit, MAX_PAGE)))).all()
    return await _records(conn, list(rows), vectors=vectors, model=model)


async def document_chunks(
    conn: AsyncConnection,
    batch_id: str,
    document_id: int,
    *,
    owner: str | None,
    after: int,
    limit: int,
) -> list[ChunkRecord]:
    """Up to ``limit`` chunks of one document of the batch with an ordinal above ``after``
    (-1 for the first), in order; :class:`NotFound` for a document not in the owner's
    batch."""
    held = select(documents.c.id).join(batches, batches.c.id == documents.c.batch_id)
    held = _scoped(held, owner).where(
        documents.c.id == document_id, documents.c.batch_id == batch_id
    )
    if (await conn.execute(held)).first() is None:
        raise NotFound(f"no document {document_id} in batch {batch_id!r}")
    query = _select().where(chunks.c.document_id == document_id, chunks.c.ordinal > after)
    rows = (await conn.execute(query.order_by(chunks.c.ordinal).limit(min(limit, MAX_PAGE)))).all()
    return await _records(conn, list(rows), vectors=False, model=None)
