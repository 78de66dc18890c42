"""Big uploads stream to disk in bounded memory; limits and the local single-user mode."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.api.conftest import Server, start_server, stop_server

MB = 1024 * 1024


class PeakRss:
    """Samples a process's resident memory in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_large_upload_streams_in_bounded_memory(server: Server) -> None:
    size_mb = 150
    block = os.urandom(MB)
    digest = hashlib.sha256()
    for _ in range(size_mb):
        digest.update(block)
    boundary = "big-upload-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(size_mb):
            yield block
        yield tail

    batch_id = f"big-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id})
        # Warm the route once so that imports and first-use allocations are not counted.
        await client.post(
            f"/api/v1/batches/{batch_id}/files", files=[("f", ("warm.txt", b"w", "text/plain"))]
        )
        started = time.monotonic()
        with PeakRss(server.proc.pid) as rss:
            r = await client.post(
                f"/api/v1/batches/{batch_id}/files",
                content=body(),
                headers={"content-type": f"multipart/form-data; boundary={boundary}"},
            )
        elapsed = time.monotonic() - started
    assert r.status_code == 201, r.text
    (stored,) = r.json()["files"]
    assert stored["size"] == size_mb * MB
    assert stored["sha256"] == digest.hexdigest()
    assert os.path.getsize(stored["source"]) == size_mb * MB  # noqa: ASYNC240
    growth = (rss.peak - rss.baseline) / MB
    print(
        f"\nupload {size_mb} MB in {elapsed:.1f} s: server RSS {rss.baseline / MB:.0f} MB "
        f"-> peak {rss.peak / MB:.0f} MB (+{growth:.1f} MB)"
    )
    assert growth < 32, f"server memory grew by {growth:.0f} MB for a {size_mb} MB upload"


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Local single-user mode (no keys), small limits, a rate limit."""
    srv = start_server(
        tmp_path_factory.mktemp("small"),
        {
            "LEDGER_AUTH": "off",
            "LEDGER_MAX_UPLOAD_BYTES": str(MB),
            "LEDGER_MAX_UPLOAD_FILES": "3",
            "LEDGER_MAX_BODY_BYTES": "4096",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "30",
        },
    )
    yield srv
    stop_server(srv)


async def test_upload_limits_and_local_mode(small_server: Server) -> None:
    # No key (local mode): multipart uploads need a header another site's page cannot send.
    headers = {"X-Requested-With": "test"}
    async with small_server.client(None, headers=headers) as client:
        created = await client.post("/api/v1/batches", json={"id": "local"})
        assert created.status_code == 201, created.text
        assert created.json()["owner"] is None
        # LEDGER_AUTH=off: keys are not looked at, not even a bogus one.
        ignored = await client.get("/api/v1/batches", headers={"Authorization": "Bearer bogus"})
        assert ignored.status_code == 200
        url = "/api/v1/batches/local/files"
        too_big = await client.post(url, files=[("f", ("x.bin", b"x" * (MB + 10), "x/y"))])
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert str(MB) in too_big.json()["detail"]
        too_many = await client.post(
            url, files=[("f", (f"{i}.txt", b"x", "text/plain")) for i in range(5)]
        )
        assert too_many.status_code == 413
        assert "too many parts" in too_many.json()["detail"]
        storage = small_server.home / "storage"
        # Nothing but the marker the server leaves to show the storage is mounted.
        assert not [p for p in storage.rglob("*") if p.is_file() and p.name != ".ledger-storage"]
        ok = await client.post(url, files=[("f", ("a.txt", b"a", "text/plain"))])
        assert ok.status_code == 201
        big_json = await client.post("/api/v1/batches", json={"name": "n" * 5000})
        assert big_json.status_code == 413
        assert "4096" in big_json.json()["detail"]


async def test_rate_limit(small_server: Server) -> None:
    async with small_server.client(None) as client:
        statuses = [(await client.get("/api/v1/batches")).status_code for _ in range(40)]
        assert 429 in statuses
        limited = await client.get("/api/v1/batches")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert (await client.get("/health")).status_code == 200  # probes are not limited


def test_auth_off_is_refused_off_loopback() -> None:
    from pydantic import ValidationError

    from ledger.settings import Settings

    with pytest.raises(ValidationError, match="only allowed when LEDGER_HOST is loopback"):
        Settings(host="0.0.0.0", auth="off")
    assert Settings(host="0.0.0.0").auth_required
    assert Settings(host="127.0.0.1", auth="on").auth_required
    assert not Settings(host="127.0.0.1").auth_required


def test_allowed_roots_parsing(tmp_path: Path) -> None:
    from ledger.settings import Settings

    a, b = tmp_path / "a", tmp_path / "b"
    settings = Settings.model_validate({"allowed_roots": f"{a}{os.pathsep}{b},{a}"})
    assert settings.allowed_roots == [a, b, a]
    with pytest.raises(ValueError, match="absolute"):
        Settings.model_validate({"allowed_roots": "relative/path"})
    assert Settings().allowed_roots == []


async def test_local_mode_refuses_non_loopback_clients(small_server: Server) -> None:
    # The loopback check reads the client address; a proxied request from elsewhere that the
    # server trusts (X-Forwarded-For from 127.0.0.1, uvicorn's default) must be refused too.
    async with httpx.AsyncClient(base_url=small_server.base_url) as client:
        r = await client.get("/api/v1/batches", headers={"X-Forwarded-For": "203.0.113.9"})
    assert r.status_code == 403  # (its own rate-limit bucket: the address is the forwarded one)
    assert "loopback" in r.json()["detail"]
