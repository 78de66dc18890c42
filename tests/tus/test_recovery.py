"""Crashes, broken connections, concurrent writers and expiry, against live server processes.

The invariant everywhere: the upload's file holds exactly the bytes its row counts (after the
next status request or write), and those bytes are the client's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import httpx
import psutil
import pytest
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from tests.tus.conftest import TusServer, launch, metadata, upload_id_of, upload_in_thread

MB = 1024 * 1024


def _source(tmp: Path, size: int) -> tuple[Path, str]:
    """A file of random bytes and its SHA-256."""
    path = tmp / "source.bin"
    digest = hashlib.sha256()
    with path.open("wb") as f:
        remaining = size
        while remaining:
            block = os.urandom(min(MB, remaining))
            digest.update(block)
            f.write(block)
            remaining -= len(block)
    return path, digest.hexdigest()


def _wait(predicate: object, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _head(server: TusServer, url: str) -> httpx.Response:
    return httpx.head(url, headers=server.headers("acme"))


def _offset(server: TusServer, url: str) -> int:
    response = _head(server, url)
    assert response.status_code == 200, response.text
    return int(response.headers["Upload-Offset"])


def _raw_patch_start(server: TusServer, url: str, offset: int, length: int) -> socket.socket:
    """A PATCH whose body the test sends (and abandons) by hand."""
    path = httpx.URL(url).path
    head = (
        f"PATCH {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        f"Authorization: Bearer {server.keys['acme']}\r\n"
        "Tus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\n"
        "Content-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head.encode())
    return sock


@pytest.fixture
def crash_server(tmp_path: Path) -> Iterator[TusServer]:
    server = launch(tmp_path / "srv", {"LEDGER_TUS_COMMIT_BYTES": str(4 * MB)})
    yield server
    server.stop()


def test_sigkill_mid_upload_then_resume_50mb(crash_server: TusServer, tmp_path: Path) -> None:
    server = crash_server
    size = 50 * MB
    source, digest = _source(tmp_path, size)
    # tusclient leaves FileStorage.__init__ unannotated.
    storage = FileStorage(str(tmp_path / "tus-urls.json"))  # type: ignore[no-untyped-call]

    def uploader() -> object:
        client = tus_client.TusClient(server.endpoint, headers=server.headers("acme"))
        return client.uploader(
            str(source),
            chunk_size=MB,
            metadata={"batch": "big", "filename": "big.bin"},
            store_url=True,
            url_storage=storage,
        )

    first = uploader()
    thread, failure = upload_in_thread(first)

    def offset_in_db() -> int:
        rows = server.sql("SELECT upload_offset FROM uploads WHERE batch_id = 'big'")
        return int(rows[0][0]) if rows else 0

    _wait(lambda: offset_in_db() >= 20 * MB, what="20 MB to arrive")
    server.kill()
    thread.join(timeout=30)
    assert failure, "the upload should have failed when the server died"

    upload_id = upload_id_of(first.url)  # type: ignore[attr-defined]
    row = server.upload_row(upload_id)
    assert row.state == "receiving"
    assert 20 * MB <= row.upload_offset < size
    # Bytes may have been written after the last count; they are not counted.
    assert Path(row.path).stat().st_size >= row.upload_offset

    server.start()
    second = uploader()  # finds the URL in its storage and asks the server for the offset
    assert second.url == first.url  # type: ignore[attr-defined]
    assert second.offset == row.upload_offset  # type: ignore[attr-defined]
    assert Path(row.path).stat().st_size == row.upload_offset  # cut back by the HEAD
    second.upload()  # type: ignore[attr-defined]

    documents = server.sql(
        "SELECT id, source, source_sha256, source_size FROM documents WHERE batch_id = 'big'"
    )
    assert len(documents) == 1
    doc = documents[0]
    assert (doc.source_sha256, doc.source_size) == (digest, size)
    assert hashlib.sha256(Path(doc.source).read_bytes()).hexdigest() == digest
    row = server.upload_row(upload_id)
    assert (row.state, row.document_id, row.sha256) == ("complete", doc.id, digest)
    assert server.sql("SELECT owner FROM batches WHERE id = 'big'") == [("acme",)]

    # Asking again creates nothing.
    assert _offset(server, first.url) == size  # type: ignore[attr-defined]
    assert server.sql("SELECT count(*) FROM documents WHERE batch_id = 'big'") == [(1,)]


def test_sigkill_during_one_long_patch_keeps_its_checkpoints(crash_server: TusServer) -> None:
    server = crash_server
    data = os.urandom(24 * MB)
    url = server.create(len(data), batch="long-patch")
    upload_id = upload_id_of(url)
    sock = _raw_patch_start(server, url, 0, len(data))
    sent = counted = 0
    try:
        while (counted := server.upload_row(upload_id).upload_offset) < 8 * MB:
            sock.sendall(data[sent : sent + MB])
            sent += MB
            assert sent < len(data), "no checkpoint was counted"
            time.sleep(0.01)
        server.kill()
    finally:
        sock.close()
    server.start()
    offset = _offset(server, url)
    # What was counted before the kill survived it (and more may have been counted since).
    assert counted <= offset <= sent
    path = Path(server.upload_row(upload_id).path)
    assert path.read_bytes() == data[:offset]
    response = httpx.patch(
        url,
        headers=server.headers(
            "acme",
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        ),
        content=data[offset:],
        timeout=60,
    )
    assert response.status_code == 204
    assert server.upload_row(upload_id).sha256 == hashlib.sha256(data).hexdigest()


def test_interrupted_patch_keeps_what_arrived(tus_server: TusServer) -> None:
    data = os.urandom(4 * MB)
    url = tus_server.create(len(data), batch="interrupted")
    upload_id = upload_id_of(url)
    sock = _raw_patch_start(tus_server, url, 0, len(data))
    sock.sendall(data[: 5 * MB // 2])
    time.sleep(0.5)
    sock.close()  # mid-body

    def settled() -> bool:
        row = tus_server.upload_row(upload_id)
        return row.writer_token is None and row.upload_offset > 0

    _wait(settled, what="the broken request to be counted")
    offset = _offset(tus_server, url)
    assert 0 < offset <= 5 * MB // 2
    path = Path(tus_server.upload_row(upload_id).path)
    assert path.read_bytes() == data[:offset]

    response = httpx.patch(
        url,
        headers=tus_server.headers(
            "acme",
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        ),
        content=data[offset:],
    )
    assert response.status_code == 204
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert tus_server.sql("SELECT count(*) FROM documents WHERE batch_id = 'interrupted'") == [(1,)]


def test_bytes_left_by_a_crash_are_cut_back(tus_server: TusServer) -> None:
    url = tus_server.create(20, batch="reconcile")
    upload_id = upload_id_of(url)
    headers = tus_server.headers(
        "acme", **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    )
    assert httpx.patch(url, headers=headers, content=b"0123456789").status_code == 204
    path = Path(tus_server.upload_row(upload_id).path)
    with path.open("ab") as f:  # as a crash between writing and counting leaves it
        f.write(b"uncounted")
    assert _offset(tus_server, url) == 10
    assert path.read_bytes() == b"0123456789"

    # A file that lost counted bytes (storage trouble): the count follows the file.
    os.truncate(path, 6)
    headers["Upload-Offset"] = "10"
    conflict = httpx.patch(url, headers=headers, content=b"abcdefghij")
    assert conflict.status_code == 409
    assert "resume from 6" in conflict.json()["detail"]
    assert _offset(tus_server, url) == 6
    headers["Upload-Offset"] = "6"
    assert httpx.patch(url, headers=headers, content=b"6789abcdefghij").status_code == 204
    assert path.read_bytes() == b"0123456789abcdefghij"


async def _slow_body(data: bytes, pieces: int, pause: float) -> AsyncIterator[bytes]:
    step = len(data) // pieces
    for i in range(0, len(data), step):
        yield data[i : i + step]
        await asyncio.sleep(pause)


async def _concurrent(writer: TusServer, rival: TusServer, batch: str) -> None:
    first, second = os.urandom(MB), os.urandom(MB)
    url = writer.create(len(first), batch=batch)
    upload_id = upload_id_of(url)

    def headers(server: TusServer) -> dict[str, str]:
        return server.headers(
            "acme", **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        )

    async with httpx.AsyncClient(timeout=60) as client:
        slow = asyncio.create_task(
            client.patch(
                url,
                headers={**headers(writer), "Content-Length": str(len(first))},
                content=_slow_body(first, 40, 0.05),
            )
        )
        while writer.upload_row(upload_id).writer_token is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        rival_url = f"{rival.endpoint}/{upload_id}"
        refused = await client.patch(rival_url, headers=headers(rival), content=second)
        assert refused.status_code == 423, refused.text
        assert refused.headers["Tus-Resumable"] == "1.0.0"
        done = await slow
    assert done.status_code == 204, done.text
    assert done.headers["Upload-Offset"] == str(len(first))
    row = writer.upload_row(upload_id)
    assert row.sha256 == hashlib.sha256(first).hexdigest()
    assert Path(row.path).read_bytes() == first  # noqa: ASYNC240
    assert writer.sql("SELECT count(*) FROM documents WHERE batch_id = :b", b=batch) == [(1,)]


async def test_concurrent_patch_to_one_upload_is_refused(tus_server: TusServer) -> None:
    await _concurrent(tus_server, tus_server, "concurrent")


async def test_concurrent_patch_from_another_server_process_is_refused(
    tus_server: TusServer,
) -> None:
    # A second process on the same database and storage: only the database lease (and the
    # file lock) can stop it.
    other = TusServer(tus_server.tmp, tus_server.env, keys=tus_server.keys)
    other.start()
    try:
        await _concurrent(tus_server, other, "concurrent-processes")
    finally:
        other.stop()


def test_expired_uploads_are_gone_and_their_files_removed(tmp_path: Path) -> None:
    server = launch(
        tmp_path,
        {"LEDGER_TUS_EXPIRY_SECONDS": "1", "LEDGER_TUS_CLEANUP_SECONDS": "0.2"},
    )
    try:
        url = server.create(100, batch="expiring")
        headers = server.headers(
            "acme", **{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        )
        response = httpx.patch(url, headers=headers, content=b"x" * 10)
        assert response.status_code == 204
        assert "GMT" in response.headers["Upload-Expires"]
        row = server.upload_row(upload_id_of(url))
        assert Path(row.path).exists()
        time.sleep(1.2)
        assert _head(server, url).status_code == 410
        _wait(lambda: not Path(row.path).exists(), what="the cleanup to remove the file")
        row = server.upload_row(upload_id_of(url))
        assert row.state == "expired"
        assert row.files_removed_at is not None
        headers["Upload-Offset"] = "10"
        assert httpx.patch(url, headers=headers, content=b"y").status_code == 410
    finally:
        server.stop()


def test_cors_for_browser_clients(tmp_path: Path) -> None:
    origin = "http://dashboard.example:8080"
    server = launch(tmp_path, {"LEDGER_CORS_ORIGINS": origin})
    try:
        preflight = httpx.options(
            server.endpoint,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset,"
                "content-type,upload-checksum,upload-metadata,upload-length",
            },
        )
        assert preflight.status_code == 204, preflight.text
        assert preflight.headers["Access-Control-Allow-Origin"] == origin
        assert "PATCH" in preflight.headers["Access-Control-Allow-Methods"]

        url = server.create(5, batch="cors")
        head = httpx.head(url, headers={**server.headers("acme"), "Origin": origin})
        assert head.headers["Access-Control-Allow-Origin"] == origin
        exposed = {
            h.strip().lower() for h in head.headers["Access-Control-Expose-Headers"].split(",")
        }
        assert {
            "upload-offset",
            "location",
            "upload-length",
            "tus-version",
            "tus-resumable",
            "tus-max-size",
            "tus-extension",
            "upload-metadata",
            "upload-expires",
        } <= exposed
        created = httpx.post(
            server.endpoint,
            headers={
                **server.headers("acme"),
                "Origin": origin,
                "Upload-Length": "1",
                "Upload-Metadata": metadata(batch="cors"),
            },
        )
        assert created.headers["Access-Control-Allow-Origin"] == origin

        stranger = httpx.head(
            url, headers={**server.headers("acme"), "Origin": "http://evil.example"}
        )
        assert "Access-Control-Allow-Origin" not in stranger.headers
    finally:
        server.stop()


def test_50mb_throughput_and_server_memory(tus_server: TusServer, tmp_path: Path) -> None:
    """One 50 MB upload in 1 MB chunks (tuspy) and one in a single request: the server's
    memory stays flat (bodies are streamed to disk), and the rate is printed."""
    size = 50 * MB
    source, digest = _source(tmp_path, size)
    assert tus_server.proc is not None
    process = psutil.Process(tus_server.proc.pid)
    figures = []
    for label, chunk in (("1 MB chunks", MB), ("one request", size)):
        baseline = process.memory_info().rss
        peak = [baseline]
        stop = threading.Event()

        def sample(peak: list[int] = peak, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], process.memory_info().rss)
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        client = tus_client.TusClient(tus_server.endpoint, headers=tus_server.headers("acme"))
        uploader = client.uploader(
            str(source), chunk_size=chunk, metadata={"batch": "throughput", "filename": label}
        )
        started = time.perf_counter()
        uploader.upload()
        elapsed = time.perf_counter() - started
        stop.set()
        sampler.join()
        url = cast(str, uploader.url)  # set by upload(); tusclient types the attribute as None
        row = tus_server.upload_row(upload_id_of(url))
        assert row.sha256 == digest
        growth = (peak[0] - baseline) / MB
        figures.append(f"{label}: {size / MB / elapsed:.0f} MB/s, server RSS +{growth:.1f} MB")
        assert growth < 32, figures[-1]
    print("\n50 MB tus upload: " + "; ".join(figures))
