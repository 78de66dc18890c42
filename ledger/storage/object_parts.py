"""Multipart uploads of the object store, one part at a time: what a resumable upload kept
in the store is made of while it arrives (see :mod:`ledger.api.tus_store`).

The store holds the parts; the ledger records each part's number, ETag and offset range.
Completing names the parts with their ETags, so the store itself refuses a part that is not
the one the ledger recorded. Every call blocks; async callers run it in a thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ledger.storage.objects import CHUNK, guarded
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIN_PART_SIZE = 5 << 20  # S3's smallest part but the last
MAX_PARTS = 10_000  # S3's most parts in one upload


def part_size(max_bytes: int) -> int:
    """The part size for uploads of at most ``max_bytes``: S3's minimum, or more when the
    largest upload would need more than ``MAX_PARTS`` parts (rounded up to whole MiB)."""
    needed = -(-max_bytes // MAX_PARTS)
    mib = 1 << 20
    return max(MIN_PART_SIZE, -(-needed // mib) * mib)


@guarded
def start(s3: S3Client, url: ObjectUrl) -> str:
    """Start a multipart upload into ``url``; the store's id for it."""
    return s3.create_multipart_upload(Bucket=url.bucket, Key=url.key)["UploadId"]


@guarded
def put_part(s3: S3Client, url: ObjectUrl, store_upload_id: str, number: int, data: bytes) -> str:
    """Store ``data`` as part ``number`` (sending a number again replaces that part); its
    ETag, without quotes."""
    response = s3.upload_part(
        Bucket=url.bucket, Key=url.key, UploadId=store_upload_id, PartNumber=number, Body=data
    )
    return response["ETag"].strip('"')


@guarded
def complete(
    s3: S3Client, url: ObjectUrl, store_upload_id: str, parts: Iterable[tuple[int, str]]
) -> None:
    """Join the ``parts`` (number, ETag), in order, into the object ``url``."""
    s3.complete_multipart_upload(
        Bucket=url.bucket,
        Key=url.key,
        UploadId=store_upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": f'"{etag}"'} for n, etag in parts]},
    )


@guarded
def put_bytes(s3: S3Client, url: ObjectUrl, data: bytes) -> None:
    """Store ``data`` (less than a part) as the object ``url`` in one PUT."""
    s3.put_object(Bucket=url.bucket, Key=url.key, Body=data)


def abort(s3: S3Client, url: ObjectUrl, store_upload_id: str) -> None:
    """Drop the multipart upload and its parts; one the store no longer knows is fine."""
    from botocore.exceptions import ClientError

    try:
        s3.abort_multipart_upload(Bucket=url.bucket, Key=url.key, UploadId=store_upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchUpload", "404"):
            raise


@guarded
def sha256_of(s3: S3Client, url: ObjectUrl) -> str:
    """The object's SHA-256, read ``CHUNK`` bytes at a time."""
    body = s3.get_object(Bucket=url.bucket, Key=url.key)["Body"]
    digest = hashlib.sha256()
    try:
        for piece in body.iter_chunks(CHUNK):
            digest.update(piece)
    finally:
        body.close()
    return digest.hexdigest()
