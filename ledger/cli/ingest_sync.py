"""``ledger ingest --sync``: the half of a sync that a plain ingest does not do.

A plain run submits new and changed files. A sync also retires the batch's documents whose
file is gone or no longer selected (``ledger.queue.retire``), and it accepts a folder that
is now empty (everything in it was removed) when its batch exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ledger.cli.ingest_request import Request
from ledger.wording import plural

if TYPE_CHECKING:
    from ledger.app import Ledger


class Notes(Protocol):
    """Where a line for the person watching goes (the ingest's view)."""

    def note(self, message: str) -> None: ...


async def syncs_empty_folder(ledger: Ledger, request: Request) -> bool:
    """True when a walk that found no file is still a run: a sync of a folder now empty
    (its batch exists: everything is retired), or a watch (files are expected to come).
    Otherwise an empty folder stays a mistake in the command."""
    from ledger.errors import NotFound

    if request.watch:
        return True
    if not request.sync:
        return False
    try:
        await ledger.reads.batch(request.batch_id)
    except NotFound:
        return False
    return True


async def retire_gone_files(ledger: Ledger, request: Request, batch_id: str, view: Notes) -> int:
    """Retire the batch's documents whose file is gone, with one line saying so; returns
    how many were retired."""
    report = await ledger.control.retire_gone(batch_id, request.selection().still_there)
    if report.documents or report.running:
        running = len(report.running or [])
        later = f"; {running:,} still running, retired by the next sync" if running else ""
        view.note(
            f"removed {plural(report.documents, 'document')} whose file is gone "
            f"({report.chunks:,} chunks, {report.vectors:,} vectors){later}"
        )
    return report.documents
