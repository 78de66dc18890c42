"""Changing a submitted batch's settings: its name, priority and attempt budget.

Priority and max_attempts are read from the batch row at every claim and every failure, so
a change applies to the next claim without touching the documents. Lowering max_attempts
below what a pending document has already used makes its next failure final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import batches
from ledger.errors import InvalidInput, NotFound
from ledger.model import Batch
from ledger.queue.events import record_events
from ledger.queue.submit import load_batch

PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_RANGE = (1, 1000)
NAME_MAX_LENGTH = 500


@dataclass(frozen=True)
class BatchChanges:
    """The settings to change; None leaves a setting as it is."""

    name: str | None = None
    priority: int | None = None
    max_attempts: int | None = None

    def values(self) -> dict[str, Any]:
        if self.name is not None and len(self.name) > NAME_MAX_LENGTH:
            raise InvalidInput(f"name is longer than {NAME_MAX_LENGTH} characters")
        for field, (low, high) in (
            ("priority", PRIORITY_RANGE),
            ("max_attempts", MAX_ATTEMPTS_RANGE),
        ):
            value = getattr(self, field)
            if value is not None and not low <= value <= high:
                raise InvalidInput(f"{field} must be from {low} to {high}")
        return {
            k: v
            for k, v in (
                ("name", self.name),
                ("priority", self.priority),
                ("max_attempts", self.max_attempts),
            )
            if v is not None
        }


async def update_batch(
    conn: AsyncConnection,
    batch_id: str,
    changes: BatchChanges,
    *,
    owner: str | None,
    now: datetime,
) -> Batch:
    """Apply ``changes`` to one batch of ``owner`` (any batch when None), with an event."""
    values = changes.values()
    batch = await load_batch(conn, batch_id, for_update=True, deleting=False)
    if batch is None or (owner is not None and batch.owner != owner):
        raise NotFound(f"no batch {batch_id!r}")
    changed = {k: v for k, v in values.items() if getattr(batch, k) != v}
    if changed:
        await conn.execute(
            update(batches).where(batches.c.id == batch_id).values(**changed, updated_at=now)
        )
        await record_events(conn, now, [(batch_id, None, "batch_updated", changed)])
    updated = await load_batch(conn, batch_id, for_update=False)
    assert updated is not None  # locked above, in this transaction
    return updated
