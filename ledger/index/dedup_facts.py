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
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import DocumentFacts, Holder, etag_of
from ledger.db.models import batches, chunk_vectors, chunks, documents
from ledger.model import ClaimedDocument
from ledger.states import DocumentStatus

PARAMS_CHUNK = 1_000


def _parts(values: Sequence[Any]) -> list[list[Any]]:
    return [list(values[i : i + PARAMS_CHUNK]) for i in range(0, len(values), PARAMS_CHUNK)]


def _of_owners(owners: set[str | None]) -> Any:
    named = sorted(o for o in owners if o is not None)
    clauses = [batches.c.owner.in_(named)] if named else []
    if None in owners:
        clauses.append(batches.c.owner.is_(None))
    return or_(*clauses)


async def read_facts(
    conn: AsyncConnection, docs: Sequence[ClaimedDocument]
) -> dict[int, DocumentFacts]:
    """Each document's dedup facts (by id), for the owner of its batch."""
    if not docs:
        return {}
    owner_of: dict[str, str | None] = {
        row.id: row.owner
        for row in await conn.execute(
            select(batches.c.id, batches.c.owner).where(
                batches.c.id.in_(sorted({d.batch_id for d in docs}))
            )
        )
    }
    owners = {owner_of.get(d.batch_id) for d in docs}
    holders = (
        select(
            documents.c.id,
            documents.c.source,
            documents.c.source_size,
            documents.c.source_mtime_ns,
            documents.c.source_sha256,
            documents.c.meta,
            batches.c.owner,
        )
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(
            documents.c.status == DocumentStatus.DONE.value,
            documents.c.superseded_by.is_(None),
            documents.c.removed_at.is_(None),
            _of_owners(owners),
        )
    )
    rows: dict[int, Any] = {}
    sources = sorted({d.source for d in docs})
    hashes = sorted({d.sha256.lower() for d in docs if d.sha256})
    for column, keys in ((documents.c.source, sources), (documents.c.source_sha256, hashes)):
        for part in _parts(keys):
            for row in await conn.execute(holders.where(column.in_(part))):
                rows[row.id] = row
    models: dict[int, set[str]] = defaultdict(set)
    for part in _parts(sorted(rows)):
        found = await conn.execute(
            select(chunks.c.document_id, chunk_vectors.c.model)
            .join(chunks, chunks.c.id == chunk_vectors.c.chunk_id)
            .where(chunks.c.document_id.in_(part), chunks.c.ordinal == 0)
        )
        for document_id, model in found:
            models[document_id].add(model)
    by_source: dict[tuple[str | None, str], list[Holder]] = defaultdict(list)
    by_content: dict[tuple[str | None, str], list[Holder]] = defaultdict(list)
    for row in rows.values():
        holder = Holder(
            id=row.id,
            source=row.source,
            size=row.source_size,
            mtime_ns=row.source_mtime_ns,
            sha256=row.source_sha256,
            models=frozenset(models.get(row.id, ())),
            etag=etag_of(row.meta),
        )
        by_source[(row.owner, row.source)].append(holder)
        if row.source_sha256 is not None:
            by_content[(row.owner, row.source_sha256)].append(holder)
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
