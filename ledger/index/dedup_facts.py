"""Dedup facts for a claimed group, in one read: what a processor may skip, known up front.

A processor never reads the ledger. What the ingest processor needs from it (does a document
of the same owner hold this source's chunks, with which size, time and hash; does one hold
this content) is read here by the worker for its whole claimed group at once, and handed to
each document as a read-only :class:`ledger.artifacts.DocumentFacts`.

Holders are the documents of the same owner that are done, not superseded and not retired,
and hold chunks (the rules of :mod:`ledger.index.chunks`). By content only when the hash is
known at claim (an upload, an archive's member, a submit that gave it); a duplicate whose
content is learnt while processing is caught by the finish (:mod:`ledger.index.outcome_store`),
which also re-checks under its lock what may have changed since this read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import DocumentFacts, Holder, etag_of
from ledger.db import direct
from ledger.db.backends import backend_of
from ledger.db.models import batches, chunk_vectors, chunks, documents
from ledger.db.prepared import inline, prepared
from ledger.model import ClaimedDocument
from ledger.states import DocumentStatus


def _holders(conn: AsyncConnection, by: str) -> Any:
    """The holders, of any owner, whose source (``by="source"``) or content hash is one of
    ``p_keys``; the caller keeps those of the right owners.

    Without a join on the batches: with one, SQLite (without statistics, as in a new
    database) started from the batch (its index on batch and status) and read every done
    document of the batch for each claimed group, a cost growing with the batch; from the
    keys it is one index lookup per key.
    """
    key = documents.c.source if by == "source" else documents.c.source_sha256
    return select(
        documents.c.id,
        documents.c.batch_id,
        documents.c.source,
        documents.c.source_size,
        documents.c.source_mtime_ns,
        documents.c.source_sha256,
        documents.c.meta,
    ).where(
        backend_of(conn).one_of(key, "p_keys"),
        documents.c.status == inline(DocumentStatus.DONE.value),
        documents.c.superseded_by.is_(None),
        documents.c.removed_at.is_(None),
    )


async def read_facts(
    conn: AsyncConnection, docs: Sequence[ClaimedDocument]
) -> dict[int, DocumentFacts]:
    """Each document's dedup facts (by id), for the owner of its batch."""
    if not docs:
        return {}
    owners_query = prepared(
        conn,
        ("facts_owners",),
        lambda: select(batches.c.id, batches.c.owner).where(backend_of(conn).one_of(batches.c.id)),
    )

    async def read_owners(batch_ids: set[str]) -> None:
        if batch_ids:
            params = {"p_ids": sorted(batch_ids)}
            owner_of.update(
                (row.id, row.owner) for row in await direct.execute(conn, owners_query, params)
            )

    owner_of: dict[str, str | None] = {}
    await read_owners({d.batch_id for d in docs})
    owners = {owner_of.get(d.batch_id) for d in docs}
    found: list[Any] = []
    sources = sorted({d.source for d in docs})
    hashes = sorted({d.sha256.lower() for d in docs if d.sha256})
    for by, keys in (("source", sources), ("sha256", hashes)):
        if keys:
            holders = prepared(conn, ("facts_holders", by), partial(_holders, conn, by))
            found += await direct.execute(conn, holders, {"p_keys": keys})
    await read_owners({row.batch_id for row in found} - owner_of.keys())
    rows: dict[int, tuple[Any, str | None]] = {
        row.id: (row, owner_of.get(row.batch_id))
        for row in found
        if row.batch_id in owner_of and owner_of[row.batch_id] in owners
    }
    models: dict[int, set[str]] = defaultdict(set)
    if rows:
        vectors = prepared(
            conn,
            ("facts_models",),
            lambda: (
                select(chunks.c.document_id, chunk_vectors.c.model)
                .join(chunks, chunks.c.id == chunk_vectors.c.chunk_id)
                .where(backend_of(conn).one_of(chunks.c.document_id), chunks.c.ordinal == 0)
            ),
        )
        for document_id, model in await direct.execute(conn, vectors, {"p_ids": sorted(rows)}):
            models[document_id].add(model)
    by_source: dict[tuple[str | None, str], list[Holder]] = defaultdict(list)
    by_content: dict[tuple[str | None, str], list[Holder]] = defaultdict(list)
    for row, owner in rows.values():
        holder = Holder(
            id=row.id,
            source=row.source,
            size=row.source_size,
            mtime_ns=row.source_mtime_ns,
            sha256=row.source_sha256,
            models=frozenset(models.get(row.id, ())),
            etag=etag_of(row.meta),
        )
        by_source[(owner, row.source)].append(holder)
        if row.source_sha256 is not None:
            by_content[(owner, row.source_sha256)].append(holder)
    facts: dict[int, DocumentFacts] = {}
    for doc in docs:
        owner = owner_of.get(doc.batch_id)
        same_source = tuple(h for h in by_source.get((owner, doc.source), ()) if h.id != doc.id)
        same_content: tuple[Holder, ...] = ()
        if doc.sha256:
            key = (owner, doc.sha256.lower())
            same_content = tuple(h for h in by_content.get(key, ()) if h.id != doc.id)
        facts[doc.id] = DocumentFacts(source_holders=same_source, content_holders=same_content)
    return facts


__all__ = ["read_facts"]
