"""Uploaded files moved into the object store (``LEDGER_STORAGE_URL=s3://bucket/prefix``).

A resumable (tus) upload receives its bytes into the local file as before, so its offsets and
checksums survive a crash of the server exactly as they do without a store; when the last
byte is in, the file is sent to the store under a name derived from the upload's id (a
retried completion after a crash overwrites the same object, never makes a second one), the
upload's document names the object, and the local file is removed.

A multipart upload is parsed and hashed into the API server's local storage folder as
before (one buffer in memory), then each file is sent to the store with a multipart upload
(16 MiB parts, a few in flight: bounded memory whatever its size) and its local copy is
removed. The document names the object, ``s3://bucket/prefix/<tenant>/<batch>/<name>``, with
its size, last-modified time and ETag, so a worker on any machine reads what the API stored
and a replaced object is ``source_changed``. If anything fails, every object and file this
request made is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ledger.api.multipart import StoredFile, safe_component
from ledger.model import Upload
from ledger.settings import Settings
from ledger.storage import objects
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class StoredObject:
    """One uploaded file, now an object of the store."""

    file: StoredFile
    info: objects.ObjectInfo


def _move(
    settings: Settings, owner: str | None, batch_id: str, files: list[StoredFile]
) -> list[StoredObject]:
    assert settings.storage_url is not None
    root = ObjectUrl.parse(settings.storage_url)
    folder = f"{root.prefix}{safe_component(owner)}/{safe_component(batch_id)}/"
    s3 = objects.client_for(settings)
    moved: list[StoredObject] = []
    try:
        for file in files:
            url = root.child(folder + file.path.name)  # the server's random name: unique
            moved.append(StoredObject(file, objects.upload_file(s3, url, str(file.path))))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(file.path)
    except BaseException:
        _remove(s3, moved, files)
        raise
    return moved


def _remove(s3: S3Client, moved: list[StoredObject], files: list[StoredFile]) -> None:
    for item in moved:
        with contextlib.suppress(Exception):  # best effort: the error being raised matters
            objects.delete(s3, item.info.url)
    for file in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(file.path)


async def move_to_store(
    settings: Settings, owner: str | None, batch_id: str, files: list[StoredFile]
) -> list[StoredObject]:
    """Send the uploaded ``files`` to the store (off the event loop); their local copies
    are removed. On failure nothing of them is left, in the store or on disk."""
    return await asyncio.to_thread(_move, settings, owner, batch_id, files)


async def discard(settings: Settings, moved: list[StoredObject]) -> None:
    """Remove objects of a request that could not be recorded."""
    await asyncio.to_thread(_remove, objects.client_for(settings), moved, [])


def upload_object(settings: Settings, upload: Upload) -> ObjectUrl:
    """Where the store keeps a completed resumable upload: named after its id."""
    assert settings.storage_url is not None
    root = ObjectUrl.parse(settings.storage_url)
    folder = f"{root.prefix}{safe_component(upload.owner)}/{safe_component(upload.batch_id)}/"
    return root.child(f"{folder}tus-{upload.id}")


async def store_upload(
    settings: Settings, upload: Upload, renew: Callable[[], Awaitable[Any]]
) -> objects.ObjectInfo:
    """Send a complete upload's file to the store (a multipart upload, in a thread),
    calling ``renew`` every third of the upload lease while it takes: a large file on a
    slow link may take longer than one lease."""
    url = upload_object(settings, upload)
    sending = asyncio.ensure_future(
        asyncio.to_thread(objects.upload_file, objects.client_for(settings), url, upload.path)
    )
    try:
        while True:
            done, _ = await asyncio.wait({sending}, timeout=settings.tus_lease_seconds / 3)
            if done:
                return sending.result()
            await renew()
    finally:
        if not sending.done():
            sending.cancel()


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
