"""The read side of the chunk index: ranked search."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db import fts
from ledger.db.backends import backend_of
from ledger.db.types import JSONDoc
from ledger.errors import InvalidInput
from ledger.index.citations import search_hit
from ledger.model import SearchHit

MAX_K = 1_000


async def search(
    conn: AsyncConnection,
    query: str,
    *,
    k: int,
    owner: str | None,
    batch_id: str | None,
) -> list[SearchHit]:
    """The ``k`` chunks that match ``query`` best, best first, within ``owner``'s batches
    (all batches when ``owner`` is None) or one batch. Raises :class:`InvalidInput` for a
    query with nothing to search for; no query syntax error ever reaches the database."""
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be from 1 to {MAX_K}")
    parsed = fts.parse_query(query)
    params: dict[str, Any] = {"k": k}
    filters = []
    if owner is not None:
        filters.append("AND b.owner = :owner")
        params["owner"] = owner
    if batch_id is not None:
        filters.append("AND c.batch_id = :batch_id")
        params["batch_id"] = batch_id
    sql, params["match"] = backend_of(conn).ranked_search(parsed, " ".join(filters))
    try:
        rows = (await conn.execute(text(sql).columns(meta=JSONDoc, roots=JSONDoc), params)).all()
    except DBAPIError as exc:
        message = str(exc.orig).lower()
        if any(m in message for m in ("fts5", "tsquery", "unterminated string", "syntax error")):
            raise InvalidInput(f"the query cannot be searched: {exc.orig}") from exc
        raise
    return [search_hit(r, snippet=r.snippet, score=float(r.score)) for r in rows]
