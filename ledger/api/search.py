"""Search over the processed documents' chunks of the caller's tenant."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from litestar import get
from litestar.params import Parameter

from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import SearchHitOut, SearchResults
from ledger.core.ledger import Ledger


@get(
    "/search",
    operation_id="search",
    responses=ERROR_RESPONSES,
    tags=["search"],
    summary="Full-text search (BM25)",
)
async def search(
    ledger: Ledger,
    owner: str | None,
    q: Annotated[str, Parameter(min_length=1, max_length=1000, description="query text")],
    k: Annotated[int, Parameter(ge=1, le=100, description="hits to return")] = 10,
    batch: Annotated[
        str | None, Parameter(required=False, description="only this batch's chunks")
    ] = None,
) -> SearchResults:
    """The best matching chunks of the caller's documents, best first."""
    hits = await ledger.search(q, k=k, owner=owner, batch_id=batch)
    return SearchResults(
        query=q, k=k, hits=[SearchHitOut(**dataclasses.asdict(h)) for h in hits]
    )
