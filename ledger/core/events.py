"""The event log: an append-only row per notable transition, for live views (SSE)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import events

# (batch_id, document_id, kind, data)
EventRow = tuple[str, int | None, str, dict[str, Any] | None]


async def record_events(conn: AsyncConnection, now: datetime, rows: Sequence[EventRow]) -> None:
    """Append events in the caller's transaction, so they commit with what they describe."""
    if not rows:
        return
    await conn.execute(
        insert(events),
        [
            {"batch_id": b, "document_id": d, "kind": k, "data": data, "created_at": now}
            for b, d, k, data in rows
        ],
    )
