"""One batch's status as ``ledger status`` shows it, read straight from a SQLite file.

A short-lived command's start-up is mostly imports: this path loads neither the rest of the
core nor SQLAlchemy. It runs the status statements (:mod:`ledger.queue.status_reads`, the
same ones the ledger runs for ``GET /batches/{id}``) on Python's own ``sqlite3`` driver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from ledger.db.sqlite_reads import read, sqlite_path
from ledger.model import FailureGroup, Progress
from ledger.queue import status_reads
from ledger.states import DocumentStatus


class StatusSettings(Protocol):
    """What the read needs of the settings (``ledger.settings.Settings`` has it, and so has
    the lighter ``ledger.settings_env.ReadSettings``)."""

    @property
    def url(self) -> str: ...

    @property
    def lease_seconds(self) -> float: ...

    @property
    def busy_timeout_ms(self) -> int: ...


def read_status(
    settings: StatusSettings, batch_id: str, *, owner: str | None = None
) -> tuple[Progress, list[FailureGroup]] | None:
    """The batch's progress and failure groups, read in one read transaction.

    None when it does not apply: a database other than a SQLite file, or a file whose
    schema is not this version's; the caller then reads through :class:`Ledger`.
    """
    path = sqlite_path(settings.url)
    if path is None:
        return None

    async def work(db: status_reads.Rows) -> tuple[Progress, list[FailureGroup]]:
        # SQLite's clock is this machine's (ledger.db.backends.sqlite).
        now = datetime.now(UTC)
        found = await status_reads.progress_of(
            db, batch_id, owner=owner, now=now, lease_seconds=settings.lease_seconds
        )
        failed = found.batch.counts[DocumentStatus.FAILED]
        groups = await status_reads.failures(db, batch_id, owner=owner) if failed else []
        return found, groups

    return read(path, work, busy_timeout_ms=settings.busy_timeout_ms)
