"""Search in three modes, for the faces (CLI, API): ``text`` (BM25), ``vector`` (cosine
over stored vectors) and ``hybrid`` (both, fused by reciprocal rank).

Which model a vector search uses: ``model`` if given, else the model of the most recently
stored vector in scope (the caller's batches, or the one batch). The query is embedded with
the embedder options of a batch that stored vectors of that model, so the query and the
chunks are embedded alike (an API key is read from that batch's ``api_key_env`` variable in
the searching process).
"""

from __future__ import annotations

from typing import Literal

from ledger.core.ledger import Ledger
from ledger.core.search import MAX_K
from ledger.core.vectors import fuse
from ledger.embedders.base import EmbedderSpec, build_embedder
from ledger.errors import InvalidInput
from ledger.records import SearchHit

Mode = Literal["text", "vector", "hybrid"]
MODES: tuple[str, ...] = ("text", "vector", "hybrid")
RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al.)
HYBRID_DEPTH = 50  # hits taken from each list before fusing (at least; 4 k for larger k)


async def search(
    ledger: Ledger,
    query: str,
    *,
    mode: str = "text",
    k: int = 10,
    owner: str | None = None,
    batch_id: str | None = None,
    model: str | None = None,
) -> list[SearchHit]:
    """The ``k`` best chunks for ``query`` in ``mode``. Scores: BM25 / ``ts_rank_cd``
    (text), cosine similarity (vector), the fused reciprocal-rank score (hybrid).

    Raises ``InvalidInput`` for an unknown mode or when there are no vectors to search;
    the embedder's ``RetryableError``/``PermanentError`` when the query cannot be embedded.
    """
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "text":
        return await ledger.search(query, k=k, owner=owner, batch_id=batch_id)
    if not query.strip():
        raise InvalidInput("the query is empty")
    choice = await ledger.vector_model(owner=owner, batch_id=batch_id, model=model)
    if choice is None:
        where = f"model {model}" if model else "any model"
        raise InvalidInput(
            f"no chunk vectors of {where} to search: ingest with an embedder "
            '(option {"embedder": {...}}) or search with mode=text'
        )
    name, options = choice
    spec = EmbedderSpec.from_options(options)
    if spec is None or spec.model != name:
        raise InvalidInput(f"the embedder that stored the {name} vectors is not known")
    vector = (await build_embedder(spec).embed([query]))[0]
    depth = k if mode == "vector" else min(MAX_K, max(HYBRID_DEPTH, 4 * k))
    nearest = await ledger.search_vectors(
        vector, model=name, k=depth, owner=owner, batch_id=batch_id
    )
    if mode == "vector":
        return nearest
    ranked = await ledger.search(query, k=depth, owner=owner, batch_id=batch_id)
    return fuse([ranked, nearest], k=k, constant=RRF_K)
