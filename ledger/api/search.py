"""Search over the processed documents' chunks of the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.exceptions import HTTPException
from litestar.params import Parameter

from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import SearchResults
from ledger.core.ledger import Ledger


def _hit(value: Any) -> dict[str, Any]:
    plain = msgspec.to_builtins(value)
    return plain if isinstance(plain, dict) else {"value": plain}


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
) -> SearchResults:
    """Answers 501 until the ledger has a search index (the ingest pipeline adds it)."""
    run = getattr(ledger, "search", None)
    if run is None:
        raise HTTPException(
            status_code=501,
            detail="search is not available in this version of the ledger "
            "(no search index yet); it arrives with the ingest pipeline",
        )
    hits = await run(q, k=k, owner=owner)
    return SearchResults(query=q, k=k, hits=[_hit(h) for h in hits])
