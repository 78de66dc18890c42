"""One batch's status as ``ledger status`` and ``GET /batches/{id}`` show it: counts, rate,
ETA, the processor it may be waiting for, its sinks, and its failures by error code."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from msgspec.structs import replace

from ledger.db.sqlite_reads import read, sqlite_path
from ledger.index import sink_rows
from ledger.model import FailureGroup, Progress
from ledger.queue import progress as progress_reads
from ledger.queue import workers as workers_core
from ledger.states import DocumentStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from ledger.settings import Settings


async def progress_of(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    now: datetime,
    lease_seconds: float,
) -> Progress:
    found = await progress_reads.progress(conn, batch_id, owner=owner, now=now)
    waiting = await workers_core.waiting_for_processor(
        conn, found.batch, now=now, lease_seconds=lease_seconds
    )
    sinks = (await sink_rows.progress(conn, [batch_id])).get(batch_id, {})
    return replace(found, waiting_for_processor=waiting, sinks=sinks)


def read_status(
    settings: Settings, batch_id: str, *, owner: str | None = None
) -> tuple[Progress, list[FailureGroup]] | None:
    """The batch's progress and failure groups, read straight from a SQLite file without
    opening the ledger (a short-lived command's start-up is mostly imports: this path loads
    neither the rest of the core nor SQLAlchemy's asyncio extension).

    None when it does not apply: a database other than a SQLite file, or a file whose
    schema is not this version's; the caller then reads through :class:`Ledger`.
    """
    path = sqlite_path(settings.url)
    if path is None:
        return None

    async def work(conn: AsyncConnection) -> tuple[Progress, list[FailureGroup]]:
        # SQLite's clock is this machine's (ledger.db.server_clock).
        now = datetime.now(UTC)
        found = await progress_of(
            conn, batch_id, owner=owner, now=now, lease_seconds=settings.lease_seconds
        )
        failed = found.batch.counts[DocumentStatus.FAILED]
        groups = await progress_reads.failures(conn, batch_id, owner=owner) if failed else []
        return found, groups

    return read(path, work, busy_timeout_ms=settings.busy_timeout_ms)
