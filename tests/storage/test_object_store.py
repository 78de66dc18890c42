"""The object store client against a real S3-compatible server (moto) on loopback: paged
listing, a local copy with the object's time, and every failure as the document error it
becomes (missing, changed, refused credentials, unreachable)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import PermanentError, ProcessingError, RetryableError
from ledger.processors.base import Document
from ledger.processors.ingest import object_source
from ledger.storage import objects
from ledger.storage.urls import ObjectUrl
from tests.helpers.s3 import S3Server, start_s3, stop_s3
from tests.helpers.server import free_port


def _put(s3: S3Server, bucket: str, files: dict[str, bytes]) -> None:
    client = s3.client()
    for key, body in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)


def _doc(url: str, etag: str | None, doc_id: int = 1) -> Document:
    now = datetime.now(UTC)
    return Document(
        id=doc_id, batch_id="b", source=url, attempt=1, max_attempts=3, lease_token="t",
        lease_expires_at=now, started_at=now, processor="ingest", options={}, size=None,
        mtime_ns=None, sha256=None, meta={"etag": etag} if etag else None,
    )  # fmt: skip


def test_a_prefix_is_listed_page_by_page_in_key_order(s3: S3Server) -> None:
    bucket = s3.bucket()
    files = {f"in/{i:02d}.txt": f"text {i}".encode() for i in range(7)}
    _put(s3, bucket, {**files, "in/": b"", "in-old/x.txt": b"x", "out/y.txt": b"y"})
    client = objects.client(None, s3.endpoint)
    found = list(objects.iter_objects(client, ObjectUrl.parse(f"s3://{bucket}/in"), page_size=2))
    assert [info.url.key for info in found] == sorted(files)
    assert [info.size for info in found] == [len(body) for body in files.values()]
    assert all(len(info.etag) == 32 and info.last_modified_ns > 0 for info in found)
    one = list(objects.iter_objects(client, ObjectUrl.parse(f"s3://{bucket}/out/y.txt")))
    assert [info.url.key for info in one] == ["out/y.txt"]


def test_a_copy_has_the_objects_bytes_and_time(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    body = os.urandom(3 * objects.CHUNK + 17)
    _put(s3, bucket, {"big.bin": body})
    client = objects.client(None, s3.endpoint)
    url = ObjectUrl.parse(f"s3://{bucket}/big.bin")
    target = str(tmp_path / "copy")
    info = objects.download(client, url, target)
    assert Path(target).read_bytes() == body
    assert os.stat(target).st_mtime_ns == info.last_modified_ns
    assert info.last_modified_ns == objects.stat(client, url).last_modified_ns
    assert not Path(target + ".partial").exists()


def test_missing_changed_and_too_large_objects_are_permanent(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    _put(s3, bucket, {"a.txt": b"first"})
    client = objects.client(None, s3.endpoint)
    url = ObjectUrl.parse(f"s3://{bucket}/a.txt")
    etag = objects.stat(client, url).etag
    spool = str(tmp_path)

    copy = object_source.fetch(client, _doc(str(url), etag), url, spool, max_bytes=1 << 20)
    assert Path(copy).read_bytes() == b"first"
    object_source.remove(copy)

    with pytest.raises(PermanentError) as large:
        object_source.fetch(client, _doc(str(url), etag), url, spool, max_bytes=3)
    assert large.value.code == "too_large"

    _put(s3, bucket, {"a.txt": b"second version"})
    with pytest.raises(PermanentError) as changed:
        object_source.fetch(client, _doc(str(url), etag), url, spool, max_bytes=1 << 20)
    assert changed.value.code == "source_changed"
    with pytest.raises(PermanentError) as stale:  # the store itself compares the ETag
        objects.download(client, url, str(tmp_path / "x"), if_match=etag)
    assert stale.value.code == "source_changed"

    gone = ObjectUrl.parse(f"s3://{bucket}/gone.txt")
    with pytest.raises(PermanentError) as missing:
        object_source.fetch(client, _doc(str(gone), None), gone, spool, max_bytes=1 << 20)
    assert missing.value.code == "source_missing"
    assert sorted(os.listdir(tmp_path)) == []  # no copy is left behind by a failure


def test_an_unreachable_store_is_retryable() -> None:
    client = objects.client(None, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RetryableError) as down:
        objects.stat(client, ObjectUrl.parse("s3://some-bucket/a.txt"))
    assert down.value.code == "storage_unavailable"


def test_store_answers_map_to_stable_codes() -> None:
    from botocore.exceptions import ClientError

    def answer(code: str, status: int) -> ProcessingError:
        response: Any = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        error = ClientError(response, "GetObject")
        return objects.storage_error(error, "s3://b/k")

    denied = answer("InvalidAccessKeyId", 403)
    assert (denied.code, denied.retryable) == ("storage_denied", False)
    assert "AWS_" in denied.message  # the operator is told where credentials come from
    assert (answer("SlowDown", 503).code, answer("SlowDown", 503).retryable) == (
        "storage_unavailable",
        True,
    )
    assert answer("InternalError", 500).retryable
    assert answer("NoSuchKey", 404).code == "source_missing"
    assert answer("PreconditionFailed", 412).code == "source_changed"


def test_refused_or_missing_credentials_are_storage_denied(s3: S3Server, tmp_path: Path) -> None:
    # A server that checks credentials from its first request (moto's IAM mode): the key
    # the ledger holds is unknown to it.
    strict = start_s3(tmp_path, {"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        client = objects.client(None, strict.endpoint)
        with pytest.raises(PermanentError) as denied:
            objects.stat(client, ObjectUrl.parse("s3://some-bucket/a.txt"))
        assert denied.value.code == "storage_denied"
        with pytest.raises(PermanentError) as listing:
            list(objects.iter_objects(client, ObjectUrl.parse("s3://some-bucket/in/")))
        assert listing.value.code == "storage_denied"
    finally:
        stop_s3(strict)
    nobody = os.environ.copy()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.pop(name)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # no instance role to look for here
    try:
        objects.client.cache_clear()  # a client reads its credentials when it is made
        with pytest.raises(PermanentError) as missing:
            objects.stat(objects.client(None, s3.endpoint), ObjectUrl.parse("s3://b-1/a.txt"))
        assert missing.value.code == "storage_denied"
    finally:
        os.environ.clear()
        os.environ.update(nobody)
        objects.client.cache_clear()
