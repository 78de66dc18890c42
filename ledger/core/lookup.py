"""Small reads for the faces: which of these sources does a batch already have?"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.core.progress import get_batch
from ledger.db.models import documents

LOOKUP_CHUNK = 500  # sources per query: stays under every backend's bound-parameter limit


async def known_sources(
    conn: AsyncConnection, batch_id: str, sources: Sequence[str], *, owner: str | None
) -> set[str]:
    """The subset of ``sources`` that batch ``batch_id`` already holds as documents.

    Raises NotFound when there is no such batch (in the owner's scope).
    """
    await get_batch(conn, batch_id, owner=owner)
    known: set[str] = set()
    for start in range(0, len(sources), LOOKUP_CHUNK):
        chunk = sources[start : start + LOOKUP_CHUNK]
        rows = await conn.execute(
            select(documents.c.source).where(
                documents.c.batch_id == batch_id, documents.c.source.in_(chunk)
            )
        )
        known.update(rows.scalars())
    return known
