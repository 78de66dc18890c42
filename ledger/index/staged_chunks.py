"""Staged chunks: a big document's chunks written before its finish, attached by it.

The finish transaction holds SQLite's write lock (PostgreSQL: the document and batch rows)
and reads no file. A spool too big to carry in memory is therefore written here first by the
worker, a block at a time, each block in a short transaction of its own that inserts only
while the attempt still holds its lease (fencing: a worker that lost its lease stages
nothing). The finish then moves the rows into ``chunks`` with one ``INSERT ... SELECT`` (and
their vectors from the embedding cache with another), so what search and exports see
changes in that one transaction, exactly as before.

Rows of an abandoned attempt (killed, lease lost, finish failed) never reach ``chunks``:
the finish only takes rows of the token that still holds the lease. They are deleted by
the next attempt's first block, by the rescue that ends the attempt, by the worker whose
finish failed, by the finish of the document, or with the document (foreign key, cascade).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, delete, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import ChunkRow
from ledger.db.backends import backend_of
from ledger.db.models import chunk_vectors, chunks, documents, embedding_cache, staged_chunks
from ledger.db.prepared import inline, prepared
from ledger.errors import LedgerError
from ledger.index.vectors import VectorsIncomplete
from ledger.states import DocumentStatus
from ledger.wording import plural

# What a staged row holds besides its document and lease token (see ``stage_block``).
STAGED_COLUMNS = ("ordinal", "text", "char_start", "char_end", "page", "text_sha256")

_CHUNK_COLUMNS = [
    "document_id",
    "batch_id",
    "ordinal",
    "text",
    "char_start",
    "char_end",
    "page",
    "created_at",
]


class ChunksIncomplete(LedgerError):
    """The chunks handed in are not the numbered sequence 0..n-1 that was announced."""


def _held() -> Any:
    """The document, while the attempt holding ``p_token`` runs it (locked on PostgreSQL,
    so no rescue ends the attempt before this transaction's rows are in)."""
    return select(documents.c.id).where(
        documents.c.id == bindparam("p_id", type_=BigInteger()),
        documents.c.lease_token == bindparam("p_token", type_=String()),
        documents.c.status == inline(DocumentStatus.RUNNING.value),
    )


async def stage_block(
    conn: AsyncConnection,
    *,
    document_id: int,
    lease_token: str,
    rows: Sequence[ChunkRow],
    first: bool,
) -> bool:
    """Stage ``rows`` of the attempt holding ``lease_token``; with ``first``, drop what
    earlier attempts (or an earlier try of this one) staged for the document. Returns False,
    staging nothing, when the lease is no longer held (the caller stops)."""
    query = prepared(
        conn, ("staged_held",), lambda: backend_of(conn).lock_rows(_held(), of=documents)
    )
    held = (await conn.execute(query, {"p_id": document_id, "p_token": lease_token})).first()
    if held is None:
        return False
    if first:
        await clear(conn, [document_id])
    if rows:
        await backend_of(conn).insert_rows(
            conn,
            staged_chunks,
            constants={"document_id": document_id, "lease_token": lease_token},
            columns=STAGED_COLUMNS,
            rows=[(r.ordinal, r.text, r.char_start, r.char_end, r.page, r.key) for r in rows],
        )
    return True


async def clear(conn: AsyncConnection, document_ids: Sequence[int]) -> None:
    """Delete every staged row of these documents (any attempt's)."""
    if not document_ids:
        return
    statement = prepared(
        conn,
        ("staged_clear",),
        lambda: delete(staged_chunks).where(backend_of(conn).one_of(staged_chunks.c.document_id)),
    )
    await conn.execute(statement, {"p_ids": list(document_ids)})


async def attach(
    conn: AsyncConnection,
    *,
    document_id: int,
    batch_id: str,
    lease_token: str,
    expected: int,
    model: str | None,
    now: datetime,
) -> None:
    """Move the attempt's staged chunks into ``chunks`` (and, with ``model``, their vectors
    from the cache into ``chunk_vectors``), then drop the document's staged rows. Raises
    :class:`ChunksIncomplete` or :class:`VectorsIncomplete` when something is missing: then
    the transaction must not commit."""
    mine = (staged_chunks.c.document_id == document_id) & (
        staged_chunks.c.lease_token == lease_token
    )
    await conn.execute(
        insert(chunks).from_select(
            _CHUNK_COLUMNS,
            select(
                staged_chunks.c.document_id,
                literal(batch_id),
                staged_chunks.c.ordinal,
                staged_chunks.c.text,
                staged_chunks.c.char_start,
                staged_chunks.c.char_end,
                staged_chunks.c.page,
                literal(now, chunks.c.created_at.type),
            ).where(mine),
        )
    )
    count, top = (
        await conn.execute(
            select(func.count(), func.max(chunks.c.ordinal)).where(
                chunks.c.document_id == document_id
            )
        )
    ).one()
    # Staging checked the order; a count and a top ordinal that agree mean 0..n-1 exactly.
    if count != expected or (expected and top != expected - 1):
        raise ChunksIncomplete(
            f"document {document_id}: {plural(count, 'chunk')} staged, {expected:,} expected"
        )
    if model is not None and expected:
        source = (
            select(
                chunks.c.id,
                literal(model),
                embedding_cache.c.dimension,
                embedding_cache.c.vector,
                literal(now, chunk_vectors.c.created_at.type),
            )
            .select_from(chunks)
            .join(
                staged_chunks,
                (staged_chunks.c.document_id == chunks.c.document_id)
                & (staged_chunks.c.ordinal == chunks.c.ordinal)
                & (staged_chunks.c.lease_token == lease_token),
            )
            .join(
                embedding_cache,
                (embedding_cache.c.text_sha256 == staged_chunks.c.text_sha256)
                & (embedding_cache.c.model == model),
            )
            .where(chunks.c.document_id == document_id)
        )
        await conn.execute(
            insert(chunk_vectors).from_select(
                ["chunk_id", "model", "dimension", "vector", "created_at"], source
            )
        )
        await check_vectors(conn, document_id=document_id, model=model, expected=expected)
    await clear(conn, [document_id])


async def check_vectors(
    conn: AsyncConnection, *, document_id: int, model: str, expected: int
) -> None:
    """Raise :class:`VectorsIncomplete` unless each of the document's ``expected`` chunks
    has its ``model`` vector."""
    have = (
        await conn.execute(
            select(func.count())
            .select_from(chunk_vectors.join(chunks, chunks.c.id == chunk_vectors.c.chunk_id))
            .where(chunks.c.document_id == document_id, chunk_vectors.c.model == model)
        )
    ).scalar_one()
    if have != expected:
        raise VectorsIncomplete(
            f"document {document_id}: {expected - have:,} of {plural(expected, 'chunk')} "
            f"have no {model} vector in the cache"
        )


__all__ = ["ChunksIncomplete", "attach", "check_vectors", "clear", "stage_block"]
