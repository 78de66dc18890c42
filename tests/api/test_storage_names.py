"""Stored file names that collide: an upload never fails (or removes someone else's file)
because the name it drew, or its batch's folder, is already taken."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.api import multipart
from tests.api.conftest import Server

BOUNDARY = "xYzBoundary"


def _body(parts: dict[str, bytes]) -> bytes:
    out = b""
    for name, data in parts.items():
        out += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="{name}"\r\n'
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return out + f"--{BOUNDARY}--\r\n".encode()


async def _stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_a_taken_file_name_is_drawn_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = uuid.UUID(int=1)
    (tmp_path / taken.hex).write_bytes(b"someone else's")
    draws = iter([taken, taken])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws, None) or uuid.UUID(int=2))
    stored = await multipart.store_files(
        _stream(_body({"a.txt": b"mine"})),
        f"multipart/form-data; boundary={BOUNDARY}",
        tmp_path,
        max_files=10,
    )
    assert [s.path.name for s in stored] == [uuid.UUID(int=2).hex]
    assert stored[0].path.read_bytes() == b"mine"
    assert (tmp_path / taken.hex).read_bytes() == b"someone else's"


async def test_a_file_where_the_batch_folder_goes(server: Server) -> None:
    async with server.client("acme") as client:
        assert (await client.post("/api/v1/batches", json={"id": "in-the-way"})).status_code == 201
        blocker = server.home / "storage" / "acme" / "in-the-way"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"not a folder")
        upload = await client.post(
            "/api/v1/batches/in-the-way/files", files=[("f", ("x.txt", b"x", "text/plain"))]
        )
        assert upload.status_code == 201, upload.text
        assert upload.json()["added"] == 1
    assert blocker.read_bytes() == b"not a folder"


def test_tenant_folders_cannot_be_the_storage_layouts_own() -> None:
    for own in ("uploads", "_local", "_x"):
        name = multipart.safe_component(own)
        assert name != own and name not in ("uploads", "_local")
    assert multipart.safe_component("acme") == "acme"
