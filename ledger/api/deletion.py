"""Deleting a batch over HTTP, and finishing deletions a stopped server left half-done."""

from __future__ import annotations

import logging
from typing import Annotated

from litestar import Controller, delete
from litestar.params import Parameter

from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import BatchId
from ledger.app import Ledger

log = logging.getLogger("ledger.api")


class DeletionController(Controller):
    path = "/batches"
    tags = ("batches",)

    @delete(
        "/{batch_id:str}",
        operation_id="deleteBatch",
        responses=ERROR_RESPONSES,
        status_code=204,
        summary="Delete a batch and everything of it",
        description="Removes the batch's documents, attempts, events, chunks, full-text rows, "
        "vectors, resumable uploads and stored upload files (never a server file it was "
        "submitted from), in short transactions. 409 while documents are running, unless "
        "force=true, which cancels them first. A deletion that was interrupted leaves the "
        "batch hidden; sending the request again finishes it. Another tenant's batch is 404.",
    )
    async def delete_batch(
        self,
        batch_id: BatchId,
        ledger: Ledger,
        owner: str | None,
        force: Annotated[
            bool, Parameter(description="cancel running documents instead of refusing")
        ] = False,
    ) -> None:
        await ledger.control.delete_batch(batch_id, owner=owner, force=force)


async def finish_interrupted(ledger: Ledger) -> None:
    """Finish every deletion that a stopped process left half-done (run once at start)."""
    try:
        for batch_id in await ledger.control.unfinished_deletions():
            report = await ledger.control.delete_batch(batch_id)
            log.info("finished an interrupted deletion of batch %s: %s", batch_id, report.rows)
    except Exception:  # a background chore: the next start or a repeated request tries again
        log.exception("finishing interrupted deletions failed")
