"""Resumable uploads received into a local file (no ``LEDGER_STORAGE_URL``): one data file
per upload under ``storage/uploads/<id>``, appended under its lock (see
:mod:`ledger.api.tus_files`).

Received bytes count once they are on disk: at the end of a request, every
``tus_commit_bytes`` during a long one, and when the client goes away mid-body. Bytes of a
chunk with a checksum count only after the checksum matched (else 460, and they are cut
off). When the last byte counts, the same transaction completes the upload and creates its
document. A file longer than the counted offset (a crash between write and commit) is cut
back before anything else reads or writes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from litestar import Request

from ledger.api import object_uploads
from ledger.api.tus_files import UploadFile, sha256_of
from ledger.api.tus_protocol import (
    CHECKSUMS,
    ChecksumMismatch,
    ClientGone,
    check_append,
    request_body,
    too_large,
)
from ledger.api.tus_store import holding
from ledger.app import Ledger
from ledger.errors import Conflict
from ledger.model import Upload
from ledger.settings import Settings
from ledger.storage import objects

log = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024  # bytes gathered before one write in a thread


class _TooLarge(Exception):
    pass


async def receive(
    request: Request[Any, Any, Any],
    ledger: Ledger,
    settings: Settings,
    upload: Upload,
    token: str,
    file: UploadFile,
    *,
    client_offset: int | None,
    read_body: bool = True,
) -> Upload:
    """Append the request body to the upload held by ``token`` (whose ``file`` the caller
    has open and locked, and closes after this returns) and count it; complete the upload
    when its last byte is in. Always gives the lease up. Returns the upload as it is now;
    raises for the protocol's errors (409, 413, 460...)."""
    released = False
    try:
        durable = upload.offset
        size = await file.size()
        if size > durable:  # bytes written after the last count (a crash): not received
            await file.truncate(durable)
        elif size < durable:  # the file lost bytes the ledger counted (storage trouble)
            log.warning(
                "upload %s: file has %d bytes, the ledger counted %d; counting %d",
                upload.id,
                size,
                durable,
                size,
            )
            upload = await ledger.uploads.renew(upload.id, token, offset=size)
            durable = size
        limit, checksum = check_append(
            request,
            durable=durable,
            length=upload.length,
            max_bytes=settings.tus_max_bytes,
            client_offset=client_offset,
            read_body=read_body,
        )
        hasher = CHECKSUMS[checksum[0]]() if checksum else None
        start = position = durable
        pending: list[bytes] = []
        pending_size = 0
        renewed = time.monotonic()
        gone = False

        async def flush() -> None:
            nonlocal position, pending_size
            if pending:
                data = b"".join(pending)
                pending.clear()
                pending_size = 0
                await file.write_at(data, position, hasher)
                position += len(data)

        try:
            if read_body:
                async for chunk in request_body(request, settings.tus_idle_seconds):
                    if position + pending_size + len(chunk) > limit:
                        raise _TooLarge
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= FLUSH_BYTES:
                        await flush()
                    if hasher is None and position - durable >= settings.tus_commit_bytes:
                        # A checkpoint: what is on disk now survives a crash of this process.
                        await file.sync()
                        upload = await ledger.uploads.renew(upload.id, token, offset=position)
                        durable, renewed = position, time.monotonic()
                    elif time.monotonic() - renewed > settings.tus_lease_seconds / 3:
                        upload = await ledger.uploads.renew(upload.id, token)
                        renewed = time.monotonic()
            await flush()
        except ClientGone:
            await flush()
            gone = True
        except _TooLarge:
            await file.truncate(durable)
            raise too_large(limit, upload.length) from None

        # Nothing of a checksummed chunk was counted yet: keep all of it or none.
        if checksum is not None and hasher is not None and (gone or hasher.digest() != checksum[1]):
            await file.truncate(start)
            if gone:
                return upload
            raise ChecksumMismatch(
                f"the {checksum[0]} checksum of the {position - start} bytes received does "
                "not match Upload-Checksum; they were discarded"
            )
        await file.sync()
        if upload.length is not None and position == upload.length:
            digest = await holding(ledger, settings, upload.id, token, sha256_of(Path(upload.path)))
            mtime_ns = await file.mtime_ns()
            stored: objects.ObjectInfo | None = None
            if settings.storage_url is not None:  # begun on disk before the store kept it
                stored = await holding(
                    ledger,
                    settings,
                    upload.id,
                    token,
                    object_uploads.store_upload(settings, upload),
                )
                mtime_ns = stored.last_modified_ns
            try:
                upload = await ledger.uploads.complete(
                    upload.id,
                    token,
                    sha256=digest,
                    size=position,
                    mtime_ns=mtime_ns,
                    stored_as=(str(stored.url), stored.etag) if stored is not None else None,
                )
            except Conflict:
                # The batch was cancelled or taken meanwhile: keep the bytes, say why.
                if stored is not None:
                    await object_uploads.remove_object(settings, stored)
                await ledger.uploads.commit(upload.id, token, offset=position)
                released = True
                raise
            released = True
            if stored is not None:  # the store holds it now; the document names the object
                await object_uploads.remove_local(upload.path)
            log.info(
                "upload %s complete: %d bytes, document %s in batch %s",
                upload.id,
                position,
                upload.document_id,
                upload.batch_id,
            )
        else:
            upload = await ledger.uploads.commit(upload.id, token, offset=position)
            released = True
        return upload
    finally:
        if not released:
            await asyncio.shield(ledger.uploads.release(upload.id, token))
