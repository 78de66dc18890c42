"""Resumable (tus) uploads kept in the object store while they arrive (``LEDGER_STORAGE_URL``).

Nothing of such an upload is on the API server's disk, so any server can take its next
request. Its bytes go into one multipart upload of the store, started with the upload; a
request streams its body into parts of :func:`~ledger.storage.object_parts.part_size`
(one part in memory at a time) and records each part in the ledger as the store confirms
it, advancing the offset in the same transaction (see :mod:`ledger.uploads.parts`).
What is left at the end of a request, too little for a part, is recorded as the upload's
tail in the ledger, and the next request starts its first part with it. A request with
``Upload-Checksum`` records its parts and tail only once the checksum matched: all of its
bytes count, or none (parts sent meanwhile are replaced by the next request's, which get
the same numbers). When the last byte is in, the multipart upload is completed into the
object the upload's document names (``.../tus-<id>``), the object is read once for its
SHA-256, and the upload completes.

Writers are fenced by the upload's lease in the ledger: every record names the writer's
token. A writer that stalled past its lease may still send a part the store then holds in
place of the new writer's; completing names each part's recorded ETag, so the store refuses
such a mix instead of joining it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from litestar import Request

from ledger.api import object_uploads
from ledger.api.tus_protocol import (
    CHECKSUMS,
    ChecksumMismatch,
    ClientGone,
    check_append,
    request_body,
    too_large,
)
from ledger.app import Ledger
from ledger.errors import Conflict, PermanentError
from ledger.model import Upload
from ledger.settings import Settings
from ledger.storage import object_parts, objects
from ledger.storage.urls import ObjectUrl
from ledger.uploads import parts as upload_parts
from ledger.uploads.parts import StoredPart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")


async def start(ledger: Ledger, settings: Settings, upload: Upload) -> Upload:
    """Start the store's multipart upload of ``upload`` unless it has one; the upload as
    recorded. Called when the upload is created and again by a writer that finds none (a
    crash between the two)."""
    if upload.store_upload_id is not None:
        return upload
    s3 = objects.client_for(settings)
    url = object_uploads.upload_object(settings, upload)
    store_upload_id = await asyncio.to_thread(object_parts.start, s3, url)

    recorded = await ledger.runner.run(
        partial(
            upload_parts.start,
            upload_id=upload.id,
            store_upload_id=store_upload_id,
            store_key=str(url),
        )
    )
    if recorded is None:  # another request recorded one first: keep that one
        await asyncio.to_thread(object_parts.abort, s3, url, store_upload_id)
        return await ledger.uploads.get(upload.id)
    return recorded


async def holding(
    ledger: Ledger, settings: Settings, upload_id: str, token: str, step: Awaitable[T]
) -> T:
    """Await ``step``, renewing the lease every third of it: reading or joining a large
    object may take longer than one lease."""
    running = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({running}, timeout=settings.tus_lease_seconds / 3)
            if done:
                return running.result()
            await ledger.uploads.renew(upload_id, token)
    finally:
        if not running.done():
            running.cancel()


class _Writer:
    """One request's bytes on their way into the store: a buffer of less than a part and
    the parts sent but not yet recorded."""

    def __init__(self, ledger: Ledger, settings: Settings, upload: Upload, token: str) -> None:
        assert upload.store_upload_id is not None and upload.store_key is not None
        self.ledger, self.settings, self.upload, self.token = ledger, settings, upload, token
        self.s3: S3Client = objects.client_for(settings)
        self.url = ObjectUrl.parse(upload.store_key)
        self.store_upload_id = upload.store_upload_id
        self.part_size = object_parts.part_size(settings.tus_max_bytes)
        self.buffer = bytearray()
        self.buffer_start = 0
        self.next_number = 1
        self.unrecorded: list[StoredPart] = []

    async def load(self) -> None:
        """Take the upload's tail as the start of the next part."""
        state = await self.ledger.runner.run(
            partial(upload_parts.state, upload=self.upload), write=False
        )
        self.buffer = bytearray(state.tail)
        self.buffer_start = state.parts_end
        self.next_number = state.next_number

    async def send_part(self) -> None:
        """Send the buffer's first part (the last part of an upload may be smaller)."""
        data = bytes(self.buffer[: self.part_size])
        del self.buffer[: self.part_size]
        etag = await asyncio.to_thread(
            object_parts.put_part, self.s3, self.url, self.store_upload_id, self.next_number, data
        )
        self.unrecorded.append(StoredPart(self.next_number, etag, self.buffer_start, len(data)))
        self.next_number += 1
        self.buffer_start += len(data)

    async def record(self, *, tail: bool, release: bool) -> Upload:
        """Record the parts sent (and with ``tail`` the buffer as the tail): the offset
        advances to what the store and the tail hold, in one fenced transaction."""
        received = max(self.buffer_start, self.upload.offset)
        segment = (received, bytes(self.buffer[received - self.buffer_start :])) if tail else None
        offset = self.buffer_start + (len(self.buffer) if tail else 0)
        parts, self.unrecorded = self.unrecorded, []
        self.upload = await self.ledger.runner.run(
            partial(
                upload_parts.record,
                upload_id=self.upload.id,
                token=self.token,
                parts=parts,
                tail=segment,
                offset=max(offset, self.upload.offset),
                lease_seconds=self.settings.tus_lease_seconds,
                expiry_seconds=self.settings.tus_expiry_seconds,
                release=release,
            )
        )
        return self.upload

    async def finish(self) -> Upload:
        """Join the recorded parts into the object, hash it and complete the upload (its
        document names the object). Run again after a crash, it finds the object joined."""
        upload, length = self.upload, self.upload.length
        assert length is not None
        parts = await self.ledger.runner.run(
            partial(upload_parts.parts, upload_id=upload.id), write=False
        )
        joining = asyncio.to_thread(self._join, [(p.number, p.etag) for p in parts], length)
        await holding(self.ledger, self.settings, upload.id, self.token, joining)
        digest = await holding(
            self.ledger,
            self.settings,
            upload.id,
            self.token,
            asyncio.to_thread(object_parts.sha256_of, self.s3, self.url),
        )
        info = await asyncio.to_thread(objects.stat, self.s3, self.url)
        try:
            upload = await self.ledger.uploads.complete(
                upload.id,
                self.token,
                sha256=digest,
                size=length,
                mtime_ns=info.last_modified_ns,
                stored_as=(str(info.url), info.etag),
            )
        except Conflict:
            # The batch was cancelled or taken meanwhile: the object goes, the offset stays.
            await object_uploads.remove_object(self.settings, info)
            await self.ledger.uploads.commit(upload.id, self.token, offset=length)
            raise
        await self.ledger.runner.run(partial(upload_parts.forget, ids=[upload.id]))
        return upload

    def _join(self, parts: list[tuple[int, str]], length: int) -> None:
        if not parts:  # an empty file: the store's multipart upload needs one part
            object_parts.put_bytes(self.s3, self.url, b"")
            object_parts.abort(self.s3, self.url, self.store_upload_id)
            return
        try:
            object_parts.complete(self.s3, self.url, self.store_upload_id, parts)
        except PermanentError as exc:
            # Joined already by a request that died before the ledger heard of it.
            if exc.code != objects.SOURCE_MISSING or objects.stat(self.s3, self.url).size != length:
                raise


async def receive(
    request: Request[Any, Any, Any],
    ledger: Ledger,
    settings: Settings,
    upload: Upload,
    token: str,
    *,
    client_offset: int | None,
    read_body: bool = True,
) -> Upload:
    """Stream the request body into the store for the upload held by ``token`` and count
    it; complete the upload when its last byte is in. Always gives the lease up. Raises the
    protocol's errors (409, 413, 460) as :func:`ledger.api.tus_local.receive` does."""
    released = False
    try:
        upload = await start(ledger, settings, upload)
        durable = upload.offset
        limit, checksum = check_append(
            request,
            durable=durable,
            length=upload.length,
            max_bytes=settings.tus_max_bytes,
            client_offset=client_offset,
            read_body=read_body,
        )
        hasher = CHECKSUMS[checksum[0]]() if checksum else None
        writer = _Writer(ledger, settings, upload, token)
        await writer.load()
        position = durable
        renewed = time.monotonic()
        gone = False
        try:
            if read_body:
                async for chunk in request_body(request, settings.tus_idle_seconds):
                    if position + len(chunk) > limit:
                        raise too_large(limit, upload.length)
                    if hasher is not None:
                        hasher.update(chunk)
                    writer.buffer += chunk
                    position += len(chunk)
                    while len(writer.buffer) >= writer.part_size:
                        await writer.send_part()
                        if hasher is None:  # a checkpoint: the part's bytes count now
                            await writer.record(tail=False, release=False)
                            renewed = time.monotonic()
                    if time.monotonic() - renewed > settings.tus_lease_seconds / 3:
                        await ledger.uploads.renew(upload.id, token)
                        renewed = time.monotonic()
        except ClientGone:
            gone = True
        if checksum is not None and hasher is not None and (gone or hasher.digest() != checksum[1]):
            if gone:
                return writer.upload
            raise ChecksumMismatch(
                f"the {checksum[0]} checksum of the {position - durable} bytes received does "
                "not match Upload-Checksum; they were discarded"
            )
        if upload.length is not None and position == upload.length:
            while writer.buffer:
                await writer.send_part()
            await writer.record(tail=False, release=False)
            upload = await writer.finish()
            released = True
            log.info(
                "upload %s complete in the store: %d bytes, document %s in batch %s",
                upload.id,
                position,
                upload.document_id,
                upload.batch_id,
            )
            return upload
        upload = await writer.record(tail=True, release=True)
        released = True
        return upload
    finally:
        if not released:
            await asyncio.shield(ledger.uploads.release(upload.id, token))
