"""Search over the processed documents' chunks of the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Request, get
from litestar.params import Parameter

from ledger.api import policy
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import SearchResults
from ledger.app import Ledger
from ledger.embedders.profiles import profiles_for
from ledger.embedders.search import search as search_modes
from ledger.settings import Settings


@get(
    "/search",
    operation_id="search",
    responses=ERROR_RESPONSES,
    tags=["search"],
    summary="Search: full text (BM25), vector (cosine) or hybrid (reciprocal rank fusion)",
)
async def search(
    request: Request[Any, Any, Any],
    ledger: Ledger,
    settings: Settings,
    owner: str | None,
    q: Annotated[str, Parameter(min_length=1, max_length=1000, description="query text")],
    k: Annotated[int, Parameter(ge=1, le=100, description="hits to return")] = 10,
    batch: Annotated[
        str | None, Parameter(required=False, description="only this batch's chunks")
    ] = None,
    mode: Annotated[
        Literal["text", "vector", "hybrid"],
        Parameter(description="text: BM25; vector: cosine over stored vectors; hybrid: both"),
    ] = "text",
    model: Annotated[
        str | None,
        Parameter(
            required=False,
            max_length=200,
            description="vector and hybrid: the embedding model (default: the most recent)",
        ),
    ] = None,
    embedder: Annotated[
        str | None,
        Parameter(
            required=False,
            max_length=64,
            description="vector and hybrid: the embedder profile to embed the query with "
            "(default: the profile of the batch that stored the vectors)",
        ),
    ] = None,
) -> SearchResults:
    """The best matching chunks of the caller's documents, best first."""
    policy.check_query(request.query_params.keys())
    hits = await search_modes(
        ledger,
        q,
        mode=mode,
        k=k,
        owner=owner,
        batch_id=batch,
        model=model,
        embedder=policy.search_embedder(settings, embedder),
        profiles=profiles_for(settings),
        allow_inline=False,
        deadline=settings.search_embed_deadline_seconds,
    )
    return SearchResults(query=q, k=k, hits=hits)
