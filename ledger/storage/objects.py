"""An S3-compatible object store: list, stat, read to a local file, write, delete.

Built on boto3 (the ``s3`` extra): it speaks to AWS S3, MinIO, Ceph RGW, R2 and moto alike,
reads endpoint, region and credentials the standard AWS way (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``..., ``~/.aws/config``) and, through
``LEDGER_S3_PROFILE``, from an operator's named profile. Callers never pass credentials or
endpoints: an API caller names an object, the operator decides where and as whom it is read.

Every call here blocks; async callers run it in a thread. Memory stays bounded: listings are
read a page at a time, objects are copied in ``CHUNK`` pieces, uploads go through boto3's
multipart transfer in parts of ``PART_SIZE`` with a bounded number of threads.

Failures become the document's error with a stable code (:func:`storage_error`): a missing
object is ``source_missing``, an ETag that differs from the one recorded at submit
``source_changed``, refused credentials ``storage_denied`` (permanent: retrying does not
help until the operator fixes them), throttling, 5xx and an unreachable endpoint
``storage_unavailable`` (retryable, with the ledger's backoff).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from ledger.errors import PermanentError, ProcessingError, RetryableError
from ledger.extras import require
from ledger.storage.urls import ObjectUrl

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ledger.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

CHUNK = 1 << 20  # bytes copied at a time from an object's body to the local file
PAGE_SIZE = 1000  # keys per listing page (S3's maximum): the memory a listing holds
PART_SIZE = 16 << 20  # multipart upload part size; S3 allows 10,000 parts: 160 GB at most
MULTIPART_THRESHOLD = 16 << 20  # files at least this large are uploaded in parts
UPLOAD_THREADS = 4  # parts in flight at once: peak memory is about PART_SIZE times this

STORAGE_DENIED = "storage_denied"
STORAGE_UNAVAILABLE = "storage_unavailable"
SOURCE_MISSING = "source_missing"
SOURCE_CHANGED = "source_changed"

_MISSING = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound", "404"})
_CHANGED = frozenset({"PreconditionFailed", "412"})
_DENIED = frozenset(
    {
        "AccessDenied",
        "403",
        "Forbidden",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AccountProblem",
        "AllAccessDisabled",
    }
)


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says of one object: the facts the unchanged check compares."""

    url: ObjectUrl
    size: int
    etag: str  # without the quotes S3 puts around it
    last_modified_ns: int


def _etag(raw: str | None) -> str:
    return (raw or "").strip('"')


@functools.lru_cache(maxsize=8)
def client(profile: str | None = None, endpoint_url: str | None = None) -> S3Client:
    """A client for the operator's store (boto3 clients are thread-safe; one is kept per
    profile and endpoint). ``None`` means the standard AWS environment and files."""
    require("s3", "boto3", what="object storage (s3:// URLs)")
    import boto3
    from botocore.config import Config

    profile_config = boto3.Session(profile_name=profile)
    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
        # Path-style addressing works with every S3-compatible server, not only AWS.
        s3={"addressing_style": "path"},
        max_pool_connections=2 * UPLOAD_THREADS + 4,
    )
    return profile_config.client("s3", endpoint_url=endpoint_url, config=config)


def client_for(settings: Settings) -> S3Client:
    """The client of the store the operator configured (``LEDGER_S3_PROFILE``,
    ``LEDGER_S3_ENDPOINT_URL``, else the standard AWS environment)."""
    return client(settings.s3_profile, settings.s3_endpoint_url)


def storage_error(exc: BaseException, url: ObjectUrl | str) -> ProcessingError:
    """The document error for a failed call on ``url``; unknown failures are retryable."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        CredentialRetrievalError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = f"{code or status}: {error.get('Message') or 'no message'}"
        if code in _MISSING or status == 404:
            return PermanentError(SOURCE_MISSING, f"no such object: {url} ({detail})")
        if code in _CHANGED or status == 412:
            return PermanentError(
                SOURCE_CHANGED, f"the object {url} changed since it was submitted (ETag differs)"
            )
        if code in _DENIED or status in (401, 403):
            return PermanentError(
                STORAGE_DENIED,
                f"the object store refused the credentials for {url} ({detail}); the operator "
                "sets them (AWS_* variables or LEDGER_S3_PROFILE)",
            )
        return RetryableError(
            STORAGE_UNAVAILABLE, f"the object store failed on {url} ({detail})", systemic=False
        )
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return PermanentError(
            STORAGE_DENIED,
            f"no credentials to read {url} with ({exc}); the operator sets them (AWS_* "
            "variables or LEDGER_S3_PROFILE)",
        )
    if isinstance(exc, BotoCoreError | OSError):
        return RetryableError(
            STORAGE_UNAVAILABLE,
            f"the object store cannot be reached for {url} ({type(exc).__name__}: {exc})",
        )
    raise exc


def guarded(
    fn: Callable[Concatenate[S3Client, ObjectUrl, P], R],
) -> Callable[Concatenate[S3Client, ObjectUrl, P], R]:
    """Turn boto3's failures of ``fn(s3, url, ...)`` into :func:`storage_error`'s."""

    @functools.wraps(fn)
    def call(s3: S3Client, url: ObjectUrl, /, *args: P.args, **kwargs: P.kwargs) -> R:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(s3, url, *args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise storage_error(exc, url) from exc

    return call


def iter_objects(
    s3: S3Client, prefix: ObjectUrl, *, page_size: int = PAGE_SIZE
) -> Iterator[ObjectInfo]:
    """Every object under ``prefix`` in key order, one page in memory at a time. A prefix
    that names one object exactly (no ``/`` at its end) yields that object alone."""
    if prefix.key and not prefix.key.endswith("/"):
        try:
            yield stat(s3, prefix)
            return
        except PermanentError as exc:
            if exc.code != SOURCE_MISSING:
                raise
    yield from _listed(s3, prefix, page_size)


@guarded
def _page(s3: S3Client, prefix: ObjectUrl, page_size: int, token: str | None) -> Any:
    kwargs: dict[str, Any] = {"Bucket": prefix.bucket, "Prefix": prefix.prefix}
    kwargs["MaxKeys"] = page_size
    if token:
        kwargs["ContinuationToken"] = token
    return s3.list_objects_v2(**kwargs)


def _listed(s3: S3Client, prefix: ObjectUrl, page_size: int) -> Iterator[ObjectInfo]:
    token: str | None = None
    while True:
        page = _page(s3, prefix, page_size, token)
        for item in page.get("Contents", []):
            key = item["Key"]
            if key.endswith("/"):
                continue  # a "folder" placeholder some consoles create, not a document
            yield ObjectInfo(
                url=prefix.child(key),
                size=int(item["Size"]),
                etag=_etag(item.get("ETag")),
                last_modified_ns=_ns(item["LastModified"]),
            )
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return


def _ns(moment: Any) -> int:
    # S3 reports whole seconds; kept as nanoseconds like a file's st_mtime_ns.
    return int(moment.timestamp()) * 1_000_000_000


@guarded
def stat(s3: S3Client, url: ObjectUrl) -> ObjectInfo:
    """What the store says of the object ``url`` (``source_missing`` when there is none)."""
    head = s3.head_object(Bucket=url.bucket, Key=url.key)
    return ObjectInfo(
        url=url,
        size=int(head["ContentLength"]),
        etag=_etag(head.get("ETag")),
        last_modified_ns=_ns(head["LastModified"]),
    )


@guarded
def download(s3: S3Client, url: ObjectUrl, path: str, *, if_match: str | None = None) -> ObjectInfo:
    """Copy the object to the local file ``path`` (via ``path.partial``, ``CHUNK`` bytes at
    a time) and give the file the object's last-modified time, so the size and time checks
    of local files apply unchanged. With ``if_match`` the store itself refuses an object
    whose ETag is another (``source_changed``)."""
    kwargs: dict[str, Any] = {"Bucket": url.bucket, "Key": url.key}
    if if_match:
        kwargs["IfMatch"] = f'"{if_match}"'
    response = s3.get_object(**kwargs)
    info = ObjectInfo(
        url=url,
        size=int(response["ContentLength"]),
        etag=_etag(response.get("ETag")),
        last_modified_ns=_ns(response["LastModified"]),
    )
    partial = path + ".partial"
    body = response["Body"]
    try:
        with open(partial, "wb") as file:
            for piece in body.iter_chunks(CHUNK):
                file.write(piece)
        os.utime(partial, ns=(info.last_modified_ns, info.last_modified_ns))
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    finally:
        body.close()
    return info


@guarded
def upload_file(s3: S3Client, url: ObjectUrl, path: str) -> ObjectInfo:
    """Store the local file ``path`` as ``url``: a multipart upload in ``PART_SIZE`` parts
    for a large file (memory about ``PART_SIZE * UPLOAD_THREADS``), one PUT for a small one."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=PART_SIZE,
        max_concurrency=UPLOAD_THREADS,
        max_io_queue=UPLOAD_THREADS * 4,
    )
    s3.upload_file(path, url.bucket, url.key, Config=config)
    return stat(s3, url)


@guarded
def delete(s3: S3Client, url: ObjectUrl) -> None:
    """Remove the object (S3 answers success for an object already gone)."""
    s3.delete_object(Bucket=url.bucket, Key=url.key)
