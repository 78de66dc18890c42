"""Upload cleanup: expire unfinished uploads past their expiry, remove ended uploads' files.

Part of every maintenance pass; the API server also calls :func:`remove_ended` for one
upload it has just ended, so its file goes at once.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path

from ledger import storage
from ledger.app import Ledger
from ledger.storage import object_parts, objects
from ledger.storage.urls import ObjectUrl
from ledger.uploads import parts as upload_parts

log = logging.getLogger(__name__)

CLEANUP_BATCH = 500  # uploads per transaction


async def remove_files(paths: list[str]) -> None:
    """Remove these files (those already gone are fine), in a thread, even if cancelled."""

    def remove() -> None:
        for path in paths:
            Path(path).unlink(missing_ok=True)

    await asyncio.shield(asyncio.to_thread(remove))


async def remove_ended(ledger: Ledger, *, upload_id: str | None = None) -> int:
    """Remove the files of terminated and expired uploads that nobody is writing; record it.
    Returns how many files were removed. The files go first and the rows record it after:
    a crash in between leaves a row whose (missing) file the next pass removes again."""
    removed = 0
    while True:
        due = await ledger.uploads.files_to_remove(limit=CLEANUP_BATCH, upload_id=upload_id)
        if not due:
            return removed
        await remove_files([path for _, path in due])
        await abort_in_store(ledger, [upload_id for upload_id, _ in due])
        await ledger.uploads.files_removed([upload_id for upload_id, _ in due])
        removed += len(due)
        if len(due) < CLEANUP_BATCH:
            return removed


async def abort_in_store(ledger: Ledger, ids: list[str]) -> None:
    """Abort the object store's multipart uploads of these ended uploads (parts and all)
    and drop their parts and tails from the ledger. Aborted first, forgotten after: a crash
    in between aborts again, which the store answers as done."""
    ended = await ledger.runner.run(partial(upload_parts.in_store, ids=ids), write=False)
    if not ended:
        return
    s3 = objects.client_for(ledger.settings)
    for upload in ended:
        assert upload.store_upload_id is not None and upload.store_key is not None
        url = ObjectUrl.parse(upload.store_key)
        await asyncio.to_thread(object_parts.abort, s3, url, upload.store_upload_id)
    await ledger.runner.run(partial(upload_parts.forget, ids=[upload.id for upload in ended]))


async def storage_here(ledger: Ledger) -> bool:
    """Whether this machine sees the storage folder (its marker file is there). A worker
    without the shared mount must not record files as removed that it cannot reach."""
    marker = ledger.settings.storage / storage.MARKER
    return await asyncio.to_thread(marker.is_file)


async def clean_uploads(ledger: Ledger) -> tuple[int, int]:
    """Expire unfinished uploads past their expiry, then remove ended uploads' files when
    this machine sees the storage folder. Returns (expired, files removed)."""
    expired = 0
    while (count := await ledger.uploads.expire(limit=CLEANUP_BATCH)) > 0:
        expired += count
        if count < CLEANUP_BATCH:
            break
    if not await storage_here(ledger):
        log.debug("uploads: storage folder not on this machine; its files are left for another")
        return expired, 0
    return expired, await remove_ended(ledger)
