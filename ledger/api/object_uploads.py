"""Uploaded files kept in the object store (``LEDGER_STORAGE_URL=s3://bucket/prefix``).

A resumable (tus) upload is kept in the store while it arrives (:mod:`ledger.api.tus_store`)
and completed into an object named after the upload's id, ``.../tus-<id>``; the upload's
document names the object.

A multipart (form) upload streams each file part straight into the store as it is parsed
(:class:`ObjectFolder`): a file smaller than one part is one PUT; a larger one a multipart
upload, each part sent while the next one arrives (two parts in memory at most, nothing on
the API server's disk). The document names the object,
``s3://bucket/prefix/<tenant>/<batch>/<random name>``, with its size, last-modified time and
ETag, so a worker on any machine reads what the API stored and a replaced object is
``source_changed``. If anything fails, every object this request made is removed, and a
multipart upload cut short is aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import TYPE_CHECKING

from ledger.api.multipart import FileSink, StoredFile, safe_component
from ledger.model import Upload
from ledger.settings import Settings
from ledger.storage import object_parts, objects
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FORM_PART_SIZE = 16 << 20  # a form upload's part size: S3's 10,000 parts make 160 GB


class _ObjectFile:
    """One file part on its way into the store, one part at a time."""

    def __init__(self, s3: S3Client, url: ObjectUrl, part_size: int) -> None:
        self.s3, self.url, self.part_size = s3, url, part_size
        self.buffer = bytearray()
        self.store_upload_id: str | None = None
        self.parts: list[tuple[int, str]] = []
        self.sending: asyncio.Task[None] | None = None  # at most one part in flight
        self.stored = False

    async def open(self) -> None:
        """Nothing to make yet: a small file is one PUT when it ends."""

    async def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.part_size:
            await self._send(bytes(self.buffer[: self.part_size]))
            del self.buffer[: self.part_size]

    async def _send(self, data: bytes) -> None:
        if self.sending is not None:
            await self.sending
        if self.store_upload_id is None:
            self.store_upload_id = await asyncio.to_thread(object_parts.start, self.s3, self.url)
        number = len(self.parts) + 1
        store_upload_id = self.store_upload_id

        async def send() -> None:
            etag = await asyncio.to_thread(
                object_parts.put_part, self.s3, self.url, store_upload_id, number, data
            )
            self.parts.append((number, etag))

        self.sending = asyncio.ensure_future(send())

    async def close(self) -> tuple[str, int, str | None]:
        if self.store_upload_id is None:
            await asyncio.to_thread(object_parts.put_bytes, self.s3, self.url, bytes(self.buffer))
        else:
            if self.buffer:
                await self._send(bytes(self.buffer))
            assert self.sending is not None
            await self.sending
            await asyncio.to_thread(
                object_parts.complete, self.s3, self.url, self.store_upload_id, self.parts
            )
        self.buffer = bytearray()
        self.stored = True
        info = await asyncio.to_thread(objects.stat, self.s3, self.url)
        return str(info.url), info.last_modified_ns, info.etag

    async def discard(self) -> None:
        if self.sending is not None and not self.sending.done():
            self.sending.cancel()
            with contextlib.suppress(BaseException):
                await self.sending
        with contextlib.suppress(Exception):  # best effort: the error being raised matters
            if self.stored:
                await asyncio.to_thread(objects.delete, self.s3, self.url)
            elif self.store_upload_id is not None:
                await asyncio.to_thread(object_parts.abort, self.s3, self.url, self.store_upload_id)


class ObjectFolder:
    """A batch's folder in the store: one new object per file part, under a random name."""

    def __init__(self, settings: Settings, owner: str | None, batch_id: str) -> None:
        assert settings.storage_url is not None
        root = ObjectUrl.parse(settings.storage_url)
        self.root = root
        self.folder = f"{root.prefix}{safe_component(owner)}/{safe_component(batch_id)}/"
        self.s3 = objects.client_for(settings)
        self.part_size = FORM_PART_SIZE

    async def prepare(self) -> None:
        """Nothing to make: a store has no folders."""

    def new_file(self) -> FileSink:
        return _ObjectFile(self.s3, self.root.child(self.folder + uuid.uuid4().hex), self.part_size)

    async def remove(self, stored: list[StoredFile]) -> None:
        def remove() -> None:
            for file in stored:
                with contextlib.suppress(Exception):  # best effort, as above
                    objects.delete(self.s3, ObjectUrl.parse(file.source))

        await asyncio.shield(asyncio.to_thread(remove))


def upload_object(settings: Settings, upload: Upload) -> ObjectUrl:
    """Where the store keeps a completed resumable upload: named after its id."""
    assert settings.storage_url is not None
    root = ObjectUrl.parse(settings.storage_url)
    folder = f"{root.prefix}{safe_component(upload.owner)}/{safe_component(upload.batch_id)}/"
    return root.child(f"{folder}tus-{upload.id}")


async def store_upload(settings: Settings, upload: Upload) -> objects.ObjectInfo:
    """Send a complete upload's local file to the store (a multipart upload, in a thread);
    for uploads begun on the server's disk before uploads in progress were kept in the
    store (see :mod:`ledger.api.tus_store`)."""
    url = upload_object(settings, upload)
    client = objects.client_for(settings)
    return await asyncio.to_thread(objects.upload_file, client, url, upload.path)


async def remove_local(path: str) -> None:
    """Remove the local file of an upload now kept in the store."""

    def remove() -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    await asyncio.shield(asyncio.to_thread(remove))


async def remove_object(settings: Settings, info: objects.ObjectInfo) -> None:
    """Remove an object whose upload could not be completed (best effort)."""

    def remove() -> None:
        with contextlib.suppress(Exception):
            objects.delete(objects.client_for(settings), info.url)

    await asyncio.shield(asyncio.to_thread(remove))
