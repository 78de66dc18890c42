"""Retiring documents whose source file is gone: the folder sync's removal half.

A folder synced with ``ledger ingest DIR --sync`` (or ``--watch``) keeps the index in step
with the folder: a file that was deleted, moved away or is no longer selected by the
command's include/exclude has its document *retired*. In one transaction per step:

- its chunks and their vectors leave the index (:func:`ledger.index.chunks.remove_chunks`);
  only this document's: when another batch's document of the same source holds the
  indexed chunks, those stay;
- a ``pending`` document becomes ``skipped`` and a ``failed`` one goes through ``pending``
  to ``skipped`` (both allowed transitions, so the per-status counters follow exactly);
  ``done`` and ``skipped`` documents keep their status and their result;
- ``removed_at`` is set (a CHECK admits it on ``done`` and ``skipped`` only) and one
  ``documents_removed`` event is recorded.

Running documents are left alone (their worker owns them): the caller tries them again
once they finished. A retired document whose file comes back is submitted again, and
submit puts it back to ``pending`` (``ledger.queue.submit``).

Which files are gone is decided outside any transaction: a page of the batch's documents
is read, the caller's ``still_there`` looks at the files (in a thread: it stats them), and
the missing ones are retired in a short write transaction. So neither the batch nor the
folder is ever held in memory, and no file is touched while the write lock is held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import documents
from ledger.index.chunks import remove_chunks
from ledger.queue.endings import mark_completed
from ledger.queue.events import record_events
from ledger.states import DocumentStatus

if TYPE_CHECKING:
    from ledger.db.runner import Runner

RETIRE_STEP = 2_000  # documents looked at (and at most retired) per transaction
REMOVED_REASON = "removed: the source file is gone"

# Statuses a retire takes: everything but running (its worker owns it) and cancelled (the
# batch was cancelled: nothing is synced into it any more).
_RETIRABLE = (
    DocumentStatus.DONE.value,
    DocumentStatus.SKIPPED.value,
    DocumentStatus.FAILED.value,
    DocumentStatus.PENDING.value,
)

StillThere = Callable[[str], bool]


@dataclass
class RetireReport:
    """What a retire pass did: documents retired, chunks and vectors removed, and running
    documents whose file is gone but which were left to their worker."""

    documents: int = 0
    chunks: int = 0
    vectors: int = 0
    running: list[str] | None = None

    def add(self, other: RetireReport) -> None:
        self.documents += other.documents
        self.chunks += other.chunks
        self.vectors += other.vectors
        if other.running:
            self.running = (self.running or []) + other.running


async def retire_documents(
    conn: AsyncConnection, batch_id: str, ids: Sequence[int], now: datetime
) -> RetireReport:
    """Retire these documents of ``batch_id`` (see the module) in the caller's transaction.

    Documents already retired, running or cancelled, or not of this batch, are left as
    they are (ids come from a read made before this transaction).
    """
    report = RetireReport()
    if not ids:
        return report
    query = select(documents.c.id, documents.c.status).where(
        documents.c.batch_id == batch_id,
        documents.c.id.in_(list(ids)),
        documents.c.removed_at.is_(None),
        documents.c.status.in_(_RETIRABLE),
    )
    rows = (await conn.execute(backend_of(conn).lock_rows(query, of=documents))).all()
    if not rows:
        return report
    taken = [r.id for r in rows]
    failed = [r.id for r in rows if r.status == DocumentStatus.FAILED.value]
    if failed:  # failed -> pending -> skipped: the only way the transition rules allow
        await conn.execute(
            update(documents)
            .where(documents.c.id.in_(failed), documents.c.status == DocumentStatus.FAILED.value)
            .values(status=DocumentStatus.PENDING.value, finished_at=None, updated_at=now)
        )
    to_skip = [
        r.id
        for r in rows
        if r.status in (DocumentStatus.PENDING.value, DocumentStatus.FAILED.value)
    ]
    if to_skip:
        await conn.execute(
            update(documents)
            .where(documents.c.id.in_(to_skip), documents.c.status == DocumentStatus.PENDING.value)
            .values(
                status=DocumentStatus.SKIPPED.value,
                error_code=None,
                error_message=None,
                finished_at=now,
                result={"reason": REMOVED_REASON},
                updated_at=now,
            )
        )
    report.chunks, report.vectors = await remove_chunks(conn, taken)
    result = await conn.execute(
        update(documents)
        .where(documents.c.id.in_(taken), documents.c.removed_at.is_(None))
        .values(removed_at=now, updated_at=now)
    )
    report.documents = result.rowcount
    await record_events(
        conn,
        now,
        [(batch_id, None, "documents_removed", {"documents": report.documents})],
    )
    if to_skip:  # the last pending documents may have been among them
        await mark_completed(conn, [batch_id], now)
    return report


PATHS_EXACT = 500  # paths looked up by equality per query (bound parameters stay few)
PATHS_BELOW = 50  # paths looked under per query: each is one LIKE over the batch's rows


async def _page(
    conn: AsyncConnection,
    batch_id: str,
    after: int,
    limit: int,
    *,
    exact: Sequence[str] | None = None,
    below: Sequence[str] | None = None,
) -> list[Any]:
    """A page of the batch's documents not yet retired (id, source, status), in id order
    after ``after``; with ``exact``, only those whose source is one of them (the unique
    (batch, source) index finds them); with ``below``, only those under one of them (a
    folder that went away)."""
    query = (
        select(documents.c.id, documents.c.source, documents.c.status)
        .where(
            documents.c.batch_id == batch_id,
            documents.c.removed_at.is_(None),
            documents.c.id > after,
        )
        .order_by(documents.c.id)
        .limit(limit)
    )
    if exact is not None:
        query = query.where(documents.c.source.in_(list(exact)))
    if below is not None:
        query = query.where(
            or_(
                *(
                    documents.c.source.startswith(path.rstrip("/") + "/", autoescape=True)
                    for path in below
                )
            )
        )
    return list((await conn.execute(query)).all())


def _gone(rows: list[Any], still_there: StillThere) -> list[Any]:
    """The rows whose file is gone (it stats files: run in a thread)."""
    return [r for r in rows if not still_there(r.source)]


async def retire_gone(
    db: Runner,
    batch_id: str,
    still_there: StillThere,
    *,
    paths: Sequence[str] | None = None,
    step: int = RETIRE_STEP,
) -> RetireReport:
    """Retire every document of ``batch_id`` whose source ``still_there`` says is gone;
    with ``paths``, only documents at or below those paths are looked at (the deletions a
    watcher saw: a path that is a document's source is found by equality, the others are
    looked under as folders). Bounded: ``step`` documents per read and per write
    transaction, and a few hundred paths per query."""
    report = RetireReport()
    if paths is None:
        await _retire_pages(db, batch_id, still_there, step, report)
        return report
    for start in range(0, len(paths), PATHS_EXACT):
        part = list(paths[start : start + PATHS_EXACT])
        found = await _retire_pages(db, batch_id, still_there, step, report, exact=part)
        folders = [p for p in part if p not in found]
        for first in range(0, len(folders), PATHS_BELOW):
            below = folders[first : first + PATHS_BELOW]
            await _retire_pages(db, batch_id, still_there, step, report, below=below)
    return report


async def _retire_pages(
    db: Runner,
    batch_id: str,
    still_there: StillThere,
    step: int,
    report: RetireReport,
    *,
    exact: Sequence[str] | None = None,
    below: Sequence[str] | None = None,
) -> set[str]:
    """Page through the documents (see ``_page``), retiring those whose file is gone;
    adds to ``report`` and returns the sources looked at when ``exact`` (else empty)."""
    seen: set[str] = set()
    after = 0
    while True:

        async def read(conn: AsyncConnection, now: datetime, after: int = after) -> list[Any]:
            return await _page(conn, batch_id, after, step, exact=exact, below=below)

        rows = await db.run(read, write=False)
        if exact is not None:
            seen.update(r.source for r in rows)
        if not rows:
            return seen
        after = rows[-1].id
        gone = await asyncio.to_thread(_gone, rows, still_there)
        running = [r.source for r in gone if r.status == DocumentStatus.RUNNING.value]
        ids = [r.id for r in gone if r.status != DocumentStatus.RUNNING.value]
        if ids:

            async def write(
                conn: AsyncConnection, now: datetime, ids: list[int] = ids
            ) -> RetireReport:
                return await retire_documents(conn, batch_id, ids, now)

            report.add(await db.run(write))
        if running:
            report.add(RetireReport(running=running))
        if len(rows) < step:
            return seen


async def running_among(db: Runner, batch_id: str, sources: Sequence[str]) -> list[str]:
    """Which of ``sources`` have a running document in ``batch_id``."""
    found: list[str] = []
    for start in range(0, len(sources), RETIRE_STEP):
        part = list(sources[start : start + RETIRE_STEP])

        async def read(conn: AsyncConnection, now: datetime, part: list[str] = part) -> list[str]:
            query = select(documents.c.source).where(
                documents.c.batch_id == batch_id,
                documents.c.source.in_(part),
                documents.c.status == DocumentStatus.RUNNING.value,
            )
            return list((await conn.execute(query)).scalars())

        found.extend(await db.run(read, write=False))
    return found


async def removed_count(conn: AsyncConnection, batch_id: str) -> int:
    """How many documents of the batch are retired (its partial index counts them)."""
    query = (
        select(func.count())
        .select_from(documents)
        .where(documents.c.batch_id == batch_id, documents.c.removed_at.is_not(None))
    )
    return int((await conn.execute(query)).scalar_one())


__all__ = [
    "RETIRE_STEP",
    "RetireReport",
    "removed_count",
    "retire_documents",
    "retire_gone",
    "running_among",
]
