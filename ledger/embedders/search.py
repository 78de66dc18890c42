"""Search in three modes, for the faces (CLI, API): ``text`` (BM25), ``vector`` (cosine
over stored vectors) and ``hybrid`` (both, fused by reciprocal rank).

Which model a vector search uses: the named ``embedder`` profile's, else ``model`` if
given, else the model of the most recently stored vector in scope (the caller's batches, or
the one batch). The query is embedded with that profile, or with the embedder of a batch
that stored vectors of that model (its profile, looked up in this process's profiles), so
the query and the chunks are embedded alike. A batch's inline embedder settings (given by
the operator's CLI) are used only when ``allow_inline`` (the CLI): an API search never sends
the query, nor a key, to an address that a stored option names.

Embedding the query tries again on a 429 (waiting its Retry-After) or a 5xx, for at most
``deadline`` seconds (``LEDGER_SEARCH_EMBED_DEADLINE_SECONDS``); then the search fails with
``ServiceUnavailable`` (the API answers 503 with a Retry-After, the CLI exits 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from ledger.app import Ledger
from ledger.backpressure import retry_within
from ledger.embedders.base import EmbedderSpec, build_embedder
from ledger.errors import InvalidInput, NotAllowed
from ledger.index.search import MAX_K
from ledger.index.vectors import fuse
from ledger.model import SearchHit

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
    embedder: EmbedderSpec | None = None,
    profiles: Mapping[str, EmbedderSpec | None] | None = None,
    allow_inline: bool = True,
    deadline: float = 10.0,
) -> list[SearchHit]:
    """The ``k`` best chunks for ``query`` in ``mode``. Scores: BM25 / ``ts_rank_cd``
    (text), cosine similarity (vector), the fused reciprocal-rank score (hybrid).

    Raises ``InvalidInput`` for an unknown mode or when there are no vectors to search;
    the embedder's ``PermanentError`` when it refuses the query, ``ServiceUnavailable``
    when the query could not be embedded within ``deadline`` seconds.
    """
    if mode not in MODES:
        raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "text":
        return await ledger.index.search(query, k=k, owner=owner, batch_id=batch_id)
    if not query.strip():
        raise InvalidInput("the query is empty")
    if embedder is not None:
        if model is not None and model != embedder.model:
            raise InvalidInput(f"the embedder profile's model is {embedder.model}, not {model}")
        model = embedder.model
    choice = await ledger.index.vector_model(owner=owner, batch_id=batch_id, model=model)
    if choice is None:
        where = f"model {model}" if model else "any model"
        raise InvalidInput(
            f"no chunk vectors of {where} to search: ingest with an embedder "
            '(option {"embedder": "profile"}) or search with mode=text'
        )
    name, options = choice
    spec = embedder
    if spec is None:
        if isinstance(options, dict) and options and not allow_inline:
            raise NotAllowed(
                f"the {name} vectors were made with inline embedder settings: name an "
                "embedder profile of that model (embedder=...) to search them"
            )
        spec = EmbedderSpec.from_options(options or None, profiles)
    if spec is None or spec.model != name:
        raise InvalidInput(f"the embedder that stored the {name} vectors is not known")
    built = build_embedder(spec)
    matrix = await retry_within(
        lambda: built.embed([query]), deadline, what=f"embedding the query with {name}"
    )
    vector = matrix[0]
    depth = k if mode == "vector" else min(MAX_K, max(HYBRID_DEPTH, 4 * k))
    nearest = await ledger.index.search_vectors(
        vector, model=name, k=depth, owner=owner, batch_id=batch_id
    )
    if mode == "vector":
        return nearest
    ranked = await ledger.index.search(query, k=depth, owner=owner, batch_id=batch_id)
    return fuse([ranked, nearest], k=k, constant=RRF_K)
