"""Child documents: the members of an archive and the attachments of an email.

A child is an ordinary document of its parent's batch (same counters, retries, claims and
statuses) whose row names the parent (``parent_id``) and its path inside it
(``member_path``). The ingest processor extracts the members to files and hands them over
as data (:class:`ledger.model.ChildFile`); :func:`replace_children` runs in the
transaction that marks the parent done, fenced by the parent's lease like everything else,
so a crash at any moment leaves either all of a parent's children or none, never twice.

A parent that is processed again (its file changed, or ``reprocess``) gets its new children
in place of the old ones in that same transaction: deleting the old rows takes their
chunks, attempts and grandchildren along (ON DELETE CASCADE).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import DocumentRow, backend_of
from ledger.db.models import documents
from ledger.errors import Conflict
from ledger.model import ChildFile
from ledger.states import DocumentStatus

# Rows per INSERT (the set-based one submit uses: json_each on SQLite, unnest on
# PostgreSQL, whose counter trigger runs once per statement).
INSERT_ROWS = 2_000


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
        rows: list[DocumentRow] = [(c.source, c.size, c.mtime_ns, c.sha256, c.meta) for c in part]
        paths = [c.member_path for c in part]
        await backend_of(conn).insert_documents(
            conn, batch_id, now, rows, parent_id=parent_id, member_paths=paths
        )
    # The insert skips a source the batch already has: a child whose file path some other
    # document of the batch names would be lost without a word. All of them, or none.
    made = await conn.execute(
        select(func.count()).select_from(documents).where(documents.c.parent_id == parent_id)
    )
    if made.scalar_one() != len(children):
        raise Conflict(
            f"document {parent_id}: its member files are already documents of batch {batch_id}"
        )
    return removed.rowcount


async def member_holders(conn: AsyncConnection, parent_id: int) -> tuple[str | None, list[str]]:
    """What may still name a member file of the parent: its lease token (the attempt that
    can still make children; None when it is not running) and its children's sources."""
    token = await conn.scalar(
        select(documents.c.lease_token).where(
            documents.c.id == parent_id, documents.c.status == DocumentStatus.RUNNING.value
        )
    )
    query = select(documents.c.source).where(documents.c.parent_id == parent_id)
    sources = await conn.scalars(query)
    return token, list(sources)
