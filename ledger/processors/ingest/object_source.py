"""Reading a document whose source is an object (``s3://bucket/key``) on a worker.

The object is copied to a local file in the worker's spool folder, a megabyte at a time,
and everything after that (type detection, hashing, extraction in the process pool) reads
that file as it would read any other. The file gets the object's last-modified time, so the
size and time recorded at submit are checked the way they are for files.

Bounded: an object larger than the batch's ``max_file_bytes`` is ``too_large`` before a
byte is fetched, and one that would not fit the spool folder's free space (with a margin)
waits (``spool_full``, retryable) rather than filling the disk. The copy is named after the
document and its lease, so a retried attempt never reads a half-written copy of an earlier
one; copies left by a killed worker are swept with the chunk spools.

The object's ETag recorded at submit is sent as ``If-Match``: an object replaced since is
``source_changed`` (the store itself compares, so there is no window between a check and
the read).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from typing import TYPE_CHECKING

from ledger.artifacts import etag_of
from ledger.errors import InvalidInput, PermanentError, RetryableError
from ledger.processors.base import Document
from ledger.processors.ingest.options import IngestErrorCode
from ledger.processors.ingest.spool import SOURCE_SUFFIX
from ledger.storage import objects
from ledger.storage.urls import ObjectUrl, within_any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SPOOL_FULL = "spool_full"
FREE_MARGIN = 256 << 20  # bytes left free on the spool's disk after a copy


def check_roots(source: str, object_roots: list[str], confined: bool) -> ObjectUrl:
    """The object URL of ``source``; with ``confined`` (roots are in force on this worker)
    it must lie inside one of ``object_roots``, else ``outside_roots``."""
    try:
        url = ObjectUrl.parse(source)
    except InvalidInput as exc:  # an invalid URL can only come from a direct submit
        raise PermanentError(IngestErrorCode.SOURCE_MISSING, exc.message) from exc
    if confined and not within_any(url, object_roots):
        raise PermanentError("outside_roots", f"{source} is outside the allowed buckets")
    return url


def fetch(s3: S3Client, doc: Document, url: ObjectUrl, spool_dir: str, max_bytes: int) -> str:
    """Copy the object of ``doc`` to a local file in ``spool_dir`` and return its path.

    Blocking: run it in a thread. Raises the document's error: ``source_missing``,
    ``source_changed``, ``storage_denied``, ``too_large``, or a retryable one
    (``storage_unavailable``, ``spool_full``).
    """
    info = objects.stat(s3, url)
    etag = etag_of(doc.meta)
    if etag is not None and info.etag != etag:
        raise PermanentError(
            IngestErrorCode.SOURCE_CHANGED,
            f"the object {url} changed since it was submitted (ETag {info.etag}, "
            f"{etag} was recorded)",
        )
    if info.size > max_bytes:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE,
            f"the object has {info.size} bytes, more than max_file_bytes ({max_bytes})",
        )
    free = shutil.disk_usage(spool_dir).free
    if info.size + FREE_MARGIN > free:
        raise RetryableError(
            SPOOL_FULL,
            f"the spool folder has {free} bytes free; the object needs {info.size}",
        )
    path = os.path.join(spool_dir, f"{doc.id}-{doc.lease_token}{SOURCE_SUFFIX}")
    try:
        objects.download(s3, url, path, if_match=etag or info.etag)
    except BaseException:
        remove(path)
        raise
    return path


def remove(path: str) -> None:
    """Delete a local copy (gone already is fine)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
