"""Child documents: the members of an archive and the attachments of an email.

A child is an ordinary document of its parent's batch (same counters, retries, claims and
statuses) whose row names the parent (``parent_id``) and its path inside it
(``member_path``). The ingest processor extracts the members to files and hands them over
as data (:class:`ledger.records.ChildFile`); :func:`replace_children` runs in the
transaction that marks the parent done, fenced by the parent's lease like everything else,
so a crash at any moment leaves either all of a parent's children or none, never twice.

A parent that is processed again (its file changed, or ``reprocess``) gets its new children
in place of the old ones in that same transaction: deleting the old rows takes their
chunks, attempts and grandchildren along (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import documents
from ledger.records import ChildFile
from ledger.states import DocumentStatus

# Rows per INSERT: one statement per part (PostgreSQL's counter trigger runs per statement),
# 10 parameters a row, far below either backend's parameter limit.
INSERT_ROWS = 500


async def replace_children(
    conn: AsyncConnection,
    *,
    parent_id: int,
    batch_id: str,
    children: Sequence[ChildFile],
    now: datetime,
) -> int:
    """Make ``children`` the parent's child documents, pending in its batch, in place of any
    it had. Runs in the caller's transaction. Returns how many old children were removed."""
    removed = await conn.execute(delete(documents).where(documents.c.parent_id == parent_id))
    for start in range(0, len(children), INSERT_ROWS):
        part = children[start : start + INSERT_ROWS]
        rows: list[dict[str, Any]] = [
            {
                "batch_id": batch_id,
                "source": child.source,
                "source_size": child.size,
                "source_sha256": child.sha256,
                "meta": child.meta,
                "status": DocumentStatus.PENDING.value,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "parent_id": parent_id,
                "member_path": child.member_path,
            }
            for child in part
        ]
        await conn.execute(insert(documents).values(rows))
    return removed.rowcount

