"""Multipart form uploads stream straight into the store: each file part goes in part by
part while the body is still arriving (never the whole file in memory, nothing on the API
server's disk), and a body cut short leaves no object and no multipart upload behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.api import multipart, object_uploads
from ledger.settings import Settings
from ledger.storage import object_parts
from tests.helpers.s3 import CREDENTIALS, S3Server

MB = 1024 * 1024
BOUNDARY = "formStreamBoundary"
SIZE = 40 * MB + 12345  # three parts of 16 MiB (the last smaller)


class Counted:
    """The body as the server reads it, counting what the client has sent so far."""

    def __init__(self, *, fail_after: int | None = None) -> None:
        self.sent = 0
        self.fail_after = fail_after
        self.digest = hashlib.sha256()

    async def stream(self) -> AsyncIterator[bytes]:
        head = (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield head
        left = SIZE
        while left:
            block = os.urandom(min(MB, left))
            left -= len(block)
            self.digest.update(block)
            self.sent += len(block)
            if self.fail_after is not None and self.sent > self.fail_after:
                raise ConnectionResetError("the client went away")
            yield block
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def settings(s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = s3.bucket()
    return Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}",
        storage_url=f"s3://{bucket}/forms",
        s3_endpoint_url=s3.endpoint,
    )


def _bucket(settings: Settings) -> str:
    assert settings.storage_url is not None
    return settings.storage_url[len("s3://") :].split("/", 1)[0]


async def test_a_file_part_goes_into_the_store_while_the_body_arrives(
    settings: Settings, s3: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = Counted()
    held: list[int] = []  # bytes the client had sent but the store had not been given
    handed = 0
    put_part = object_parts.put_part

    def counting(*args: object) -> str:
        nonlocal handed
        data = args[-1]
        assert isinstance(data, bytes)
        held.append(body.sent - handed)
        handed += len(data)
        return put_part(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(object_parts, "put_part", counting)
    folder = object_uploads.ObjectFolder(settings, "acme", "b1")
    [stored] = await multipart.store_files(
        body.stream(), f"multipart/form-data; boundary={BOUNDARY}", folder, max_files=10
    )

    assert len(held) == 3 and handed == SIZE
    # At most the part being sent and the one filling up: never the whole file.
    assert max(held) <= 2 * object_uploads.FORM_PART_SIZE + 2 * MB < SIZE
    assert (stored.size, stored.sha256) == (SIZE, body.digest.hexdigest())
    bucket = _bucket(settings)
    key = stored.source.split("/", 3)[3]
    assert stored.source.startswith(f"s3://{bucket}/forms/acme/b1/")
    data = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(data).hexdigest() == stored.sha256 and stored.etag
    assert [p for p in settings.storage.rglob("*") if p.is_file()] == []  # no local copy


async def test_a_body_cut_short_leaves_nothing_in_the_store(
    settings: Settings, s3: S3Server
) -> None:
    folder = object_uploads.ObjectFolder(settings, "acme", "b1")
    with pytest.raises(ConnectionResetError):
        await multipart.store_files(
            Counted(fail_after=36 * MB).stream(),
            f"multipart/form-data; boundary={BOUNDARY}",
            folder,
            max_files=10,
        )
    bucket = _bucket(settings)
    assert s3.keys(bucket) == []
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
