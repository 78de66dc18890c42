"""An archive's or email's members in the object store (``LEDGER_STORAGE_URL``).

Workers on other machines share only the database and the store, so a member extracted to
the local storage folder could be read by no one else. With a storage URL set, each member
file is stored as ``<storage url>members/<parent id>/<lease token>/<file name>`` (the name
it has locally, ``<index><extension>``, in its attempt's folder: see
:mod:`ledger.storage.member_attempts`) before the parent's finish transaction, and its
child's source is that object. Attempts at the same parent never share a key.

Every call here blocks; async callers run it in a thread. Nothing outside the storage URL's
prefix is ever listed or deleted: the member folder is built from the operator's URL and the
parent's id, never from a caller's name.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ledger.errors import ProcessingError
from ledger.storage import objects
from ledger.storage.local import MEMBERS_FOLDER
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ledger.settings import Settings

log = logging.getLogger(__name__)

MEMBER_THREADS = 8  # small members uploaded at once (boto3's client pool holds 12)


def members_root(storage_url: str, parent_id: int) -> ObjectUrl:
    """The prefix the members of document ``parent_id`` are stored under."""
    root = ObjectUrl.parse(storage_url)
    return root.child(f"{root.prefix}{MEMBERS_FOLDER}/{parent_id}/")


def upload_members(
    s3: S3Client, storage_url: str, parent_id: int, token: str, paths: Sequence[str]
) -> list[objects.ObjectInfo]:
    """Store the local member files ``paths`` under the prefix of the parent's attempt with
    lease ``token``. What the store says of each, in the order of ``paths``. On a failure
    this attempt's keys are removed (as far as the store lets) and the store's error is
    raised.

    Small members go up ``MEMBER_THREADS`` at a time (an archive of thousands of them would
    otherwise wait on one round trip each); a member of ``MULTIPART_THRESHOLD`` or more goes
    alone, in a multipart upload, so memory stays about ``PART_SIZE * UPLOAD_THREADS``.
    """
    root = members_root(storage_url, parent_id)
    folder = root.child(f"{root.key}{token}/")
    targets = [folder.child(folder.key + os.path.basename(path)) for path in paths]
    stored: dict[int, objects.ObjectInfo] = {}

    def put(i: int) -> None:
        stored[i] = objects.upload_file(s3, targets[i], paths[i])

    try:
        sizes = [os.path.getsize(path) for path in paths]
        small = [i for i, size in enumerate(sizes) if size < objects.MULTIPART_THRESHOLD]
        with ThreadPoolExecutor(MEMBER_THREADS, thread_name_prefix="members") as pool:
            # list(): every upload's failure is raised here, once all have ended.
            list(pool.map(put, small))
        for i, size in enumerate(sizes):
            if size >= objects.MULTIPART_THRESHOLD:
                put(i)
    except BaseException:
        delete_objects(s3, targets)
        raise
    return [stored[i] for i in range(len(paths))]


def remove_members(s3: S3Client, storage_url: str, parent_id: int) -> int:
    """Delete every object under the parent's member prefix (all its attempts'); how many
    were deleted. Deleting while listing is safe: S3's continuation token is a position in
    key order, so one page in memory at a time is all this holds."""
    removed = 0
    for info in objects.iter_objects(s3, members_root(storage_url, parent_id)):
        objects.delete(s3, info.url)
        removed += 1
    return removed


def delete_objects(s3: S3Client, urls: Iterable[ObjectUrl]) -> None:
    """Delete these objects as far as the store lets (a cleanup must not raise)."""
    for url in urls:
        with contextlib.suppress(ProcessingError):
            objects.delete(s3, url)


def remove_unadopted(settings: Settings, parent_ids: Sequence[int]) -> int:
    """Delete the member objects of these documents (their children's, and what attempts
    killed before their finish or refused at it left); how many were deleted. Failures are
    logged, not raised: a batch deletion goes on."""
    if settings.storage_url is None or not parent_ids:
        return 0
    s3 = objects.client_for(settings)
    removed = 0
    for parent_id in parent_ids:
        try:
            removed += remove_members(s3, settings.storage_url, parent_id)
        except ProcessingError as exc:
            log.warning("could not remove member objects of document %s: %s", parent_id, exc)
    return removed
