"""The chunk index as a service: dedup facts, the writes that store a document's chunks
with its outcome, search (full text and vectors), the embedding cache, chunk reads, sink
progress and the dry-run plan. Each method is one read or one transaction on the runner."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ledger.db.runner import Runner
from ledger.errors import InvalidInput
from ledger.index import chunk_reads, chunks, plan, search, sink_rows, vectors
from ledger.index.chunk_reads import ChunkRecord
from ledger.model import (
    BatchSpec,
    IndexedDocument,
    Plan,
    SearchHit,
    SinkProgress,
    SourceSpec,
    UnchangedSkip,
)
from ledger.queue.service import submission


class Index:
    """Chunks, full text, vectors and the embedding cache (rules in docs/ingest.md)."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def indexed_source(
        self,
        batch_id: str,
        source: str,
        *,
        exclude_id: int | None = None,
        model: str | None = None,
    ) -> IndexedDocument | None:
        """The document holding the chunks of ``source`` for the owner of ``batch_id``."""
        return await self._db.read(
            lambda conn, now: chunks.indexed_source(
                conn, batch_id=batch_id, source=source, exclude_id=exclude_id, model=model
            )
        )

    async def indexed_content(
        self,
        batch_id: str,
        sha256: str,
        *,
        exclude_id: int | None = None,
        model: str | None = None,
    ) -> IndexedDocument | None:
        """A document of the owner of ``batch_id`` holding chunks of content ``sha256``."""
        return await self._db.read(
            lambda conn, now: chunks.indexed_content(
                conn, batch_id=batch_id, sha256=sha256, exclude_id=exclude_id, model=model
            )
        )

    async def sink_progress(self, batch_ids: Sequence[str]) -> dict[str, dict[str, SinkProgress]]:
        """Per batch, per sink profile: documents whose version is pending, done or failed
        in the store, and the latest error (``ledger.index.sink_rows``)."""
        return await self._db.read(lambda conn, now: sink_rows.progress(conn, batch_ids))

    async def search(
        self,
        query: str,
        k: int = 10,
        *,
        owner: str | None = None,
        batch_id: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query`` (BM25 on SQLite, ``ts_rank_cd`` on
        PostgreSQL), within ``owner``'s batches or one batch. Raises ``InvalidInput`` for a
        query with nothing to search for."""
        return await self._db.read(
            lambda conn, now: search.search(conn, query, k=k, owner=owner, batch_id=batch_id)
        )

    async def plan(
        self,
        spec: BatchSpec,
        sources: Iterable[SourceSpec],
        *,
        skip_unchanged: UnchangedSkip | None = None,
        roots: Sequence[str] | None = None,
        listed: int = 1_000,
    ) -> Plan:
        """Dry run of a submission: which sources are new, changed or unchanged, decided by
        the real submission with ``skip_unchanged`` (as ``queue.submit`` is given it) in a
        transaction that is rolled back, and which indexed ones are gone (under ``roots``,
        or from the batch ``spec.id``). Lists at most ``listed`` sources per group."""
        work = submission(
            self._db, spec, sources, skip_unchanged, plan.plan, roots=roots, listed=listed
        )
        return await self._db.rolled_back(work)

    async def cached_keys(self, model: str, keys: Sequence[str]) -> set[str]:
        """Which text hashes of ``keys`` already have a ``model`` vector in the cache."""
        return await self._db.read(lambda conn, now: vectors.cached_keys(conn, model, keys))

    async def cache_vectors(self, model: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Commit (text hash, vector bytes) pairs to the embedding cache now, in a
        transaction of their own, so they are never computed again whatever happens next.
        Vector bytes come from :func:`ledger.index.vectors.to_bytes`."""
        await self._db.run(
            lambda conn, now: vectors.cache_vectors(conn, model=model, items=items, now=now)
        )

    async def vector_model(
        self,
        *,
        owner: str | None = None,
        batch_id: str | None = None,
        model: str | None = None,
    ) -> tuple[str, str | dict[str, Any]] | None:
        """The model to search with, and the embedder option of a batch that used it: the
        model of the most recently stored vector in scope (or ``model``, if it has vectors
        in scope). None when there are none."""
        return await self._db.read(
            lambda conn, now: vectors.latest_model(
                conn, owner=owner, batch_id=batch_id, model=model
            )
        )

    async def search_vectors(
        self,
        vector: Sequence[float] | Any,
        *,
        model: str,
        k: int = 10,
        owner: str | None = None,
        batch_id: str | None = None,
    ) -> list[SearchHit]:
        """The ``k`` chunks whose ``model`` vectors are nearest to ``vector`` (cosine, brute
        force in blocks of 10,000), best first; ``score`` is the cosine similarity."""
        if not 1 <= k <= search.MAX_K:
            raise InvalidInput(f"k must be from 1 to {search.MAX_K}")
        return await self._db.read(
            lambda conn, now: vectors.nearest(
                conn, vector, model=model, k=k, owner=owner, batch_id=batch_id
            )
        )

    async def batch_chunks(
        self,
        batch_id: str,
        *,
        owner: str | None = None,
        after: int = 0,
        limit: int = 500,
        vectors: bool = False,
        model: str | None = None,
    ) -> list[ChunkRecord]:
        """A page of a batch's chunks after chunk id ``after`` (see index/chunk_reads.py)."""
        return await self._db.read(
            lambda conn, now: chunk_reads.batch_chunks(
                conn, batch_id, owner=owner, after=after, limit=limit, vectors=vectors,
                model=model,
            )
        )  # fmt: skip

    async def document_chunks(
        self,
        batch_id: str,
        document_id: int,
        *,
        owner: str | None = None,
        after: int = -1,
        limit: int = 100,
    ) -> list[ChunkRecord]:
        """A page of one document's chunks after ordinal ``after`` (index/chunk_reads.py)."""
        return await self._db.read(
            lambda conn, now: chunk_reads.document_chunks(
                conn, batch_id, document_id, owner=owner, after=after, limit=limit
            )
        )
