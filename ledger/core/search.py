"""The read side of the chunk index: ranked search, and the dry-run plan of a submission."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.core.index import owner_matches
from ledger.db import fts
from ledger.db.dialect import is_postgres
from ledger.db.models import batches, documents
from ledger.errors import InvalidInput
from ledger.records import BatchSpec, Plan, PlanGroup, SearchHit, SourceSpec
from ledger.states import DocumentStatus

MAX_K = 1_000
PLAN_CHUNK = 1_000

_SQLITE_SEARCH = """
SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, c.ordinal, c.page,
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
  SELECT c.id AS chunk_id, c.document_id, c.batch_id, d.source, c.ordinal, c.page,
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
        rows = (await conn.execute(text(sql), params)).all()
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
            source=r.source,
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


# --------------------------------------------------------------------------- plan


class _Group:
    def __init__(self, listed: int) -> None:
        self.count = 0
        self.sources: list[str] = []
        self._listed = listed

    def add(self, source: str) -> None:
        self.count += 1
        if len(self.sources) < self._listed:
            self.sources.append(source)

    def frozen(self) -> PlanGroup:
        return PlanGroup(self.count, self.sources)


def _holders(owner: str | None) -> Any:
    return (
        select(
            documents.c.id,
            documents.c.source,
            documents.c.source_size,
            documents.c.source_mtime_ns,
            documents.c.source_sha256,
        )
        .join(batches, batches.c.id == documents.c.batch_id)
        .where(
            owner_matches(owner),
            documents.c.status == DocumentStatus.DONE.value,
            documents.c.superseded_by.is_(None),
        )
    )


def _unchanged(spec: SourceSpec, row: Any) -> bool | None:
    """True/False when the recorded facts decide it; None when nothing can be compared."""
    if spec.sha256 is not None and row.source_sha256 is not None:
        return bool(spec.sha256.lower() == row.source_sha256)
    if (
        spec.size is not None
        and spec.mtime_ns is not None
        and row.source_size is not None
        and row.source_mtime_ns is not None
    ):
        return bool(spec.size == row.source_size and spec.mtime_ns == row.source_mtime_ns)
    return None


def _like_prefix(root: str) -> str:
    root = root.rstrip("/") + "/"
    escaped = root.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def plan(
    conn: AsyncConnection,
    spec: BatchSpec,
    sources: Iterable[SourceSpec],
    *,
    roots: Sequence[str] | None,
    listed: int,
) -> Plan:
    """Classify ``sources`` against what is indexed for ``spec.owner``; write nothing.

    Sources are read and looked up ``PLAN_CHUNK`` at a time. Finding what is *gone* needs
    the set of source names seen (the one thing held for the whole run); it is looked for
    under ``roots`` (path prefixes) or, without roots, among the documents of the batch
    ``spec.id`` if it exists.
    """
    groups = {name: _Group(listed) for name in ("new", "changed", "unchanged", "gone")}
    seen: set[str] = set()
    iterator = iter(sources)
    while chunk := list(itertools.islice(iterator, PLAN_CHUNK)):
        names = [s.source for s in chunk]
        rows = (
            await conn.execute(
                _holders(spec.owner).where(documents.c.source.in_(names)).order_by(documents.c.id)
            )
        ).all()
        holder = {r.source: r for r in rows}  # the newest wins: ordered by id
        for item in chunk:
            if item.source in seen:
                continue
            seen.add(item.source)
            row = holder.get(item.source)
            if row is None:
                groups["new"].add(item.source)
            elif _unchanged(item, row):
                groups["unchanged"].add(item.source)
            else:
                groups["changed"].add(item.source)

    scope: Any = None
    if roots:
        scope = _holders(spec.owner).where(
            or_(*(documents.c.source.like(_like_prefix(r), escape="\\") for r in roots))
        )
    elif spec.id is not None:
        scope = _holders(spec.owner).where(documents.c.batch_id == spec.id)
    if scope is not None:
        after = 0
        while True:
            rows = (
                await conn.execute(
                    scope.where(documents.c.id > after).order_by(documents.c.id).limit(PLAN_CHUNK)
                )
            ).all()
            if not rows:
                break
            for r in rows:
                if r.source not in seen:
                    seen.add(r.source)  # report each gone source once
                    groups["gone"].add(r.source)
            after = rows[-1].id
    return Plan(**{name: group.frozen() for name, group in groups.items()})
