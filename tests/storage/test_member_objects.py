"""Member objects against a real S3-compatible server (moto): a big member goes up in a
multipart upload, each attempt at a parent writes under a prefix of its own (another
attempt's keys are never overwritten or removed), and removing a parent's members never
touches a key outside its prefix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ledger.settings import Settings
from ledger.storage import member_objects, objects
from tests.helpers.s3 import S3Server


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_each_attempt_stores_members_under_its_own_prefix(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    url = f"s3://{bucket}/store/"
    client = s3.client()
    # Neighbours that look alike but lie outside the parent's member prefix.
    outside = ["store/members/70/0.txt", "store/members/7-old/0.txt", "other/members/7/0.txt"]
    for key in outside:
        client.put_object(Bucket=bucket, Key=key, Body=b"not this parent's")
    big = os.urandom(objects.MULTIPART_THRESHOLD + (1 << 20))
    paths = [
        _write(tmp_path / "0.txt", b"first member"),
        _write(tmp_path / "1.bin", big),
        _write(tmp_path / "2.txt", b"third member"),
    ]
    s3_client = objects.client(None, s3.endpoint)
    stored = member_objects.upload_members(s3_client, url, 7, "first", paths)
    assert [str(i.url) for i in stored] == [
        f"s3://{bucket}/store/members/7/first/{n}" for n in ("0.txt", "1.bin", "2.txt")
    ]
    assert stored[1].size == len(big)
    assert "-" in stored[1].etag  # a multipart upload's ETag names its part count
    got = client.get_object(Bucket=bucket, Key="store/members/7/first/1.bin")["Body"].read()
    assert got == big

    # Another attempt at the same parent: its own keys; the first attempt's are untouched.
    again = member_objects.upload_members(
        s3_client, url, 7, "second", [_write(tmp_path / "0.txt", b"changed member")]
    )
    assert [str(i.url) for i in again] == [f"s3://{bucket}/store/members/7/second/0.txt"]
    assert again[0].etag != stored[0].etag
    firsts = [f"store/members/7/first/{n}" for n in ("0.txt", "1.bin", "2.txt")]
    assert s3.keys(bucket) == sorted([*outside, *firsts, "store/members/7/second/0.txt"])
    first = client.get_object(Bucket=bucket, Key="store/members/7/first/0.txt")["Body"].read()
    assert first == b"first member"

    settings = Settings(storage_url=url, s3_endpoint_url=s3.endpoint)
    assert member_objects.remove_unadopted(settings, [7, 8]) == 4
    assert s3.keys(bucket) == sorted(outside)


def test_a_failed_upload_removes_what_it_wrote(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    s3_client = objects.client(None, s3.endpoint)
    paths = [_write(tmp_path / "0.txt", b"written"), str(tmp_path / "gone.txt")]
    with pytest.raises(FileNotFoundError):
        member_objects.upload_members(s3_client, f"s3://{bucket}/p", 3, "token", paths)
    assert s3.keys(bucket) == []
