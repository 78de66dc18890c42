"""Vectors of chunks: the embedding cache, the vectors stored with a document, and the
brute-force nearest-neighbour search over them.

Rules (docs/ingest.md, "Embeddings"):

- ``embedding_cache`` holds every vector ever computed, keyed by (SHA-256 of the text,
  model). It is written as soon as an embedder answers, in a transaction of its own, so a
  text is never sent to the same model twice: not within a document, a batch, nor after a
  crash. Rows are never changed (INSERT ... ON CONFLICT DO NOTHING).
- ``chunk_vectors`` holds the vector of each stored chunk for the model its batch used. It
  is written only by :func:`attach_vectors`, inside the transaction that stores the chunks
  and marks the document done, from the cache: a document is done with an embedder exactly
  when every one of its chunks has its vector; deleting a chunk deletes its vector.
- Vectors are stored unit-length, as float32 little-endian bytes, so cosine similarity is a
  dot product.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import and_, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.artifacts import DTYPE, from_bytes, text_sha256, to_bytes
from ledger.db.backends import backend_of
from ledger.db.models import batches, chunk_vectors, chunks, documents, embedding_cache
from ledger.errors import InvalidInput, LedgerError
from ledger.index.citations import search_hit
from ledger.model import SearchHit

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

PARAMS_CHUNK = 1_000
SCAN_BLOCK = 10_000  # vectors read per query during a search: bounds its memory


class VectorsIncomplete(LedgerError):
    """Some chunks of the document have no vector in the embedding cache."""


async def cached_keys(conn: AsyncConnection, model: str, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` (text hashes) have a vector for ``model`` in the cache."""
    found: set[str] = set()
    unique = sorted(set(keys))
    for start in range(0, len(unique), PARAMS_CHUNK):
        part = unique[start : start + PARAMS_CHUNK]
        rows = await conn.execute(
            select(embedding_cache.c.text_sha256).where(
                embedding_cache.c.model == model, embedding_cache.c.text_sha256.in_(part)
            )
        )
        found.update(rows.scalars().all())
    return found


async def cache_vectors(
    conn: AsyncConnection,
    *,
    model: str,
    items: Iterable[tuple[str, bytes]],
    now: datetime,
) -> None:
    """Add (text hash, vector bytes) pairs to the cache; pairs already there are kept as
    they are."""
    rows = [
        {
            "text_sha256": key,
            "model": model,
            "dimension": len(data) // 4,
            "vector": data,
            "created_at": now,
        }
        for key, data in items
    ]
    for start in range(0, len(rows), PARAMS_CHUNK):
        await conn.execute(
            backend_of(conn).insert_ignoring_duplicates(embedding_cache),
            rows[start : start + PARAMS_CHUNK],
        )


async def attach_vectors(
    conn: AsyncConnection,
    *,
    document_id: int,
    model: str,
    ordinals: Sequence[tuple[int, str]],
    now: datetime,
) -> None:
    """Store the vectors of a document's chunks (given as (ordinal, text hash), chunks just
    stored in this transaction) from the cache. Raises :class:`VectorsIncomplete` when one
    is missing: then the transaction must not commit."""
    if not ordinals:
        return
    lo, hi = min(o for o, _ in ordinals), max(o for o, _ in ordinals)
    ids: dict[int, int] = dict(
        (
            await conn.execute(
                select(chunks.c.ordinal, chunks.c.id).where(
                    chunks.c.document_id == document_id, chunks.c.ordinal.between(lo, hi)
                )
            )
        ).all()
    )
    keys = sorted({key for _, key in ordinals})
    vectors: dict[str, tuple[int, bytes]] = {}
    for start in range(0, len(keys), PARAMS_CHUNK):
        part = keys[start : start + PARAMS_CHUNK]
        rows = await conn.execute(
            select(
                embedding_cache.c.text_sha256,
                embedding_cache.c.dimension,
                embedding_cache.c.vector,
            ).where(embedding_cache.c.model == model, embedding_cache.c.text_sha256.in_(part))
        )
        for key, dimension, data in rows:
            vectors[key] = (dimension, bytes(data))
    rows_out: list[dict[str, Any]] = []
    for ordinal, key in ordinals:
        found = vectors.get(key)
        if found is None:
            raise VectorsIncomplete(
                f"document {document_id}: chunk {ordinal} has no {model} vector in the cache"
            )
        rows_out.append(
            {
                "chunk_id": ids[ordinal],
                "model": model,
                "dimension": found[0],
                "vector": found[1],
                "created_at": now,
            }
        )
    await conn.execute(insert(chunk_vectors), rows_out)


def has_vectors(model: Any, document_id: Any = documents.c.id) -> Any:
    """WHERE clause on ``documents`` (or on the alias whose id is ``document_id``): the
    document's chunks carry ``model`` vectors (they are all-or-nothing per document, so
    looking at its first chunk is enough)."""
    return (
        select(chunk_vectors.c.chunk_id)
        .join(chunks, chunks.c.id == chunk_vectors.c.chunk_id)
        .where(
            chunks.c.document_id == document_id,
            chunks.c.ordinal == 0,
            chunk_vectors.c.model == model,
        )
        .exists()
    )


def _scope(query: Any, owner: str | None, batch_id: str | None) -> Any:
    # Never a batch being deleted: its chunks go in steps, and none may be found meanwhile.
    query = query.join(batches, batches.c.id == chunks.c.batch_id).where(
        batches.c.deleting_at.is_(None)
    )
    if owner is not None:
        query = query.where(batches.c.owner == owner)
    if batch_id is not None:
        query = query.where(chunks.c.batch_id == batch_id)
    return query


async def latest_model(
    conn: AsyncConnection, *, owner: str | None, batch_id: str | None, model: str | None
) -> tuple[str, str | dict[str, Any]] | None:
    """The model of the most recently stored vector in scope (or ``model`` if it has
    vectors there), with the embedder option (profile name or settings) of the batch that
    stored it."""
    query = (
        select(chunk_vectors.c.model, chunks.c.batch_id)
        .join(chunks, chunks.c.id == chunk_vectors.c.chunk_id)
        .order_by(chunk_vectors.c.chunk_id.desc())
        .limit(1)
    )
    if model is not None:
        query = query.where(chunk_vectors.c.model == model)
    row = (await conn.execute(_scope(query, owner, batch_id))).first()
    if row is None:
        return None
    options = (
        await conn.execute(select(batches.c.options).where(batches.c.id == row.batch_id))
    ).scalar()
    spec = (options or {}).get("embedder") if isinstance(options, dict) else None
    # A profile name (what API batches store) or inline settings (given by the operator).
    if isinstance(spec, str):
        return row.model, spec
    return row.model, dict(spec) if isinstance(spec, dict) else {}


async def nearest(
    conn: AsyncConnection,
    query: npt.ArrayLike,
    *,
    model: str,
    k: int,
    owner: str | None,
    batch_id: str | None,
    block: int = SCAN_BLOCK,
) -> list[SearchHit]:
    """The ``k`` chunks whose ``model`` vectors are closest to ``query`` by cosine, best
    first. Brute force: the vectors are read ``block`` at a time (keyset on chunk id) and
    only a top-``k`` heap is kept, so memory does not grow with the index."""
    import numpy as np

    vector = from_bytes(to_bytes(query))
    dimension = vector.shape[0]
    # A min-heap of the best k: its head is the worst kept, the lowest score and, among
    # equal scores (the same text embedded twice is common), the last by source.
    heap: list[tuple[float, _LastFirst]] = []
    after = -1
    while True:
        page = (
            select(
                chunk_vectors.c.chunk_id,
                chunk_vectors.c.vector,
                documents.c.source,
                chunks.c.ordinal,
            )
            .join(chunks, chunks.c.id == chunk_vectors.c.chunk_id)
            .join(documents, documents.c.id == chunks.c.document_id)
            .where(
                chunk_vectors.c.model == model,
                chunk_vectors.c.dimension == dimension,
                chunk_vectors.c.chunk_id > after,
            )
            .order_by(chunk_vectors.c.chunk_id)
            .limit(block)
        )
        rows = (await conn.execute(_scope(page, owner, batch_id))).all()
        if not rows:
            break
        matrix = np.frombuffer(b"".join(bytes(r[1]) for r in rows), dtype=DTYPE).reshape(
            len(rows), dimension
        )
        scores = matrix @ vector
        if len(rows) > k:  # every row as good as the k-th: ties are settled by source below
            kth = np.partition(scores, len(rows) - k)[len(rows) - k]
            best = np.flatnonzero(scores >= kth)
        else:
            best = np.arange(len(rows))
        for i in best.tolist():
            row = rows[i]
            item = (float(scores[i]), _LastFirst((row.source, row.ordinal, row.chunk_id)))
            if len(heap) < k:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
        after = int(rows[-1].chunk_id)
        if len(rows) < block:
            break
    ranked = sorted(heap, reverse=True)
    return await _hits(conn, [(last.key[2], score) for score, last in ranked])


class _LastFirst:
    """A (source, ordinal, chunk id) key that orders the other way round, so that among
    equal scores the heap drops, and the ranking puts last, the later source: results do
    not depend on the order in which documents happened to be indexed."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[str, int, int]) -> None:
        self.key = key

    def __lt__(self, other: _LastFirst) -> bool:
        return self.key > other.key

    def __gt__(self, other: _LastFirst) -> bool:
        return self.key < other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LastFirst) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


async def _hits(conn: AsyncConnection, ranked: Sequence[tuple[int, float]]) -> list[SearchHit]:
    if not ranked:
        return []
    rows = await conn.execute(
        select(
            chunks.c.id.label("chunk_id"),
            chunks.c.document_id,
            chunks.c.batch_id,
            documents.c.source,
            documents.c.meta,
            batches.c.roots,
            chunks.c.ordinal,
            chunks.c.page,
            chunks.c.char_start,
            chunks.c.char_end,
            chunks.c.text,
        )
        .join(documents, and_(documents.c.id == chunks.c.document_id))
        .join(batches, batches.c.id == chunks.c.batch_id)
        .where(chunks.c.id.in_([chunk_id for chunk_id, _ in ranked]))
    )
    by_id = {r.chunk_id: r for r in rows}
    # A chunk deleted between the scan and this read is left out.
    return [
        search_hit(by_id[chunk_id], snippet=_snippet(by_id[chunk_id].text), score=score)
        for chunk_id, score in ranked
        if chunk_id in by_id
    ]


def _snippet(text: str, length: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= length else flat[: length - 1].rstrip() + "…"


def fuse(lists: Sequence[Sequence[SearchHit]], *, k: int, constant: int = 60) -> list[SearchHit]:
    """Reciprocal rank fusion: each chunk scores ``sum(1 / (constant + rank))`` over the
    lists it is in (rank from 1); the first list's hit (its snippet) represents it."""
    if constant < 0:
        raise InvalidInput("the fusion constant must not be negative")
    scores: dict[int, float] = {}
    first: dict[int, SearchHit] = {}
    for hits in lists:
        for rank, hit in enumerate(hits, 1):
            scores[hit.chunk_id] = scores.get(hit.chunk_id, 0.0) + 1.0 / (constant + rank)
            first.setdefault(hit.chunk_id, hit)
    # Equal fused scores (rank 1 in one list ties with rank 1 in the other) by source and
    # position, as each search ranks its own ties.
    order = sorted(
        scores,
        key=lambda chunk_id: (
            -scores[chunk_id],
            first[chunk_id].source,
            first[chunk_id].ordinal,
            chunk_id,
        ),
    )[:k]
    return [msgspec.structs.replace(first[chunk_id], score=scores[chunk_id]) for chunk_id in order]


__all__ = [
    "VectorsIncomplete",
    "attach_vectors",
    "cache_vectors",
    "cached_keys",
    "from_bytes",
    "fuse",
    "has_vectors",
    "latest_model",
    "nearest",
    "text_sha256",
    "to_bytes",
]
