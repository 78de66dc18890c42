"""The read side of the chunk index: ranked search."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.core.citations import source_name
from ledger.db import fts
from ledger.db.dialect import is_postgres
from ledger.db.types import JSONDoc
from ledger.errors import InvalidInput
from ledger.records import SearchHit

MAX_K = 1_000

_SQLITE_SEARCH = """
SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, d.meta, b.roots, c.ordinal, c.page,
       c.char_start, c.char_end, c.text,
       snippet(chunks_fts, 0, '«', '»', '…', 24) AS snippet,
       -bm25(chunks_fts) AS score
FROM chunks_fts
JOIN chunks c ON c.id = chunks_fts.rowid
JOIN documents d ON d.id = c.document_id
JOIN batches b ON b.id = d.batch_id
WHERE chunks_fts MATCH :match AND b.deleting_at IS NULL {filters}
ORDER BY bm25(chunks_fts), c.id
LIMIT :k
"""

# ts_rank_cd normalisation 1: divide by 1 + log(length), so a short chunk that is about
# the term outranks a long one that mentions it in passing (as BM25 does).
_POSTGRES_SEARCH = """
WITH q AS (SELECT websearch_to_tsquery('{config}', :match) AS query),
hits AS (
  SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, d.meta, b.roots, c.ordinal, c.page,
         c.char_start, c.char_end, c.text, ts_rank_cd(c.tsv, q.query, 1) AS score
  FROM q, chunks c
  JOIN documents d ON d.id = c.document_id
  JOIN batches b ON b.id = d.batch_id
  WHERE c.tsv @@ q.query AND b.deleting_at IS NULL {filters}
  ORDER BY score DESC, c.id
  LIMIT :k
)
SELECT hits.*, ts_headline('{config}', hits.text, q.query,
         'StartSel=«, StopSel=», MaxWords=30, MinWords=12, MaxFragments=1') AS snippet
FROM hits, q
ORDER BY hits.score DESC, hits.chunk_id
"""


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
    if is_postgres(conn):
        sql = _POSTGRES_SEARCH.format(config=fts.TS_CONFIG, filters=" ".join(filters))
        params["match"] = fts.websearch_text(parsed)
    else:
        sql = _SQLITE_SEARCH.format(filters=" ".join(filters))
        params["match"] = fts.fts5_match(parsed)
    try:
        rows = (await conn.execute(text(sql).columns(meta=JSONDoc, roots=JSONDoc), params)).all()
    except DBAPIError as exc:
        message = str(exc.orig).lower()
        if any(m in message for m in ("fts5", "tsquery", "unterminated string", "syntax error")):
            raise InvalidInput(f"the query cannot be searched: {exc.orig}") from exc
        raise
    return [
        SearchHit(
            chunk_id=r.chunk_id,
            document_id=r.document_id,
            batch_id=r.batch_id,
            source=source_name(r.source, r.meta),
            source_name=source_name(r.source, r.meta, r.roots),
            ordinal=r.ordinal,
            page=r.page,
            char_start=r.char_start,
            char_end=r.char_end,
            text=r.text,
            snippet=r.snippet,
            score=float(r.score),
        )
        for r in rows
    ]
