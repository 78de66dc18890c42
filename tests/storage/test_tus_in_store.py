"""Resumable uploads kept in the object store while they arrive: two API server processes
share only the database and the store (moto on loopback). Server A is SIGKILLed in the
middle of a PATCH; server B answers HEAD with the offset the ledger counted, takes the next
PATCH once A's lease has run out, and completes the upload; the object is the file byte for
byte, no part counts twice, and a worker process indexes the document. Termination and
expiry abort the store's multipart upload and drop its parts and tail."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import S3Server
from tests.reliability.support import batch_complete, start_worker, stop_all
from tests.tus.conftest import TusServer, launch, metadata, upload_id_of

MB = 1024 * 1024
PART = 5 * MB  # the store's minimum part size: the part size for these servers' limit
WORDS = [
    "ledger",
    "bucket",
    "part",
    "tail",
    "offset",
    "lease",
    "fence",
    "resume",
    "store",
    "object",
    "server",
]


def _text(size: int) -> bytes:
    rng = random.Random(16)
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rng.choices(WORDS, k=12)) + ".\n").encode()
    return bytes(out[:size])


def _servers_env(s3: S3Server, bucket: str, **extra: str) -> dict[str, str]:
    return {
        **s3.env(),
        "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads",
        "LEDGER_TUS_MAX_BYTES": str(64 * MB),
        "LEDGER_TUS_LEASE_SECONDS": "2",
        **extra,
    }


def _second_server(first: TusServer, tmp: Path) -> TusServer:
    """Another API server: its own home and storage folder, the first one's database."""
    other = TusServer(tmp, {**first.env, "LEDGER_DATABASE_URL": first.db_url})
    other.keys = first.keys
    other.home.mkdir(parents=True)
    other.start()
    return other


def _patch(server: TusServer, url: str, offset: int, body: bytes, **headers: str) -> httpx.Response:
    return httpx.patch(
        f"{server.endpoint}/{upload_id_of(url)}",  # whichever server the URL first named
        content=body,
        headers=server.headers(
            "acme",
            **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
            **headers,
        ),
        timeout=60,
    )


def _sha256_header(body: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode()


def _parts(server: TusServer, upload_id: str) -> list[tuple[int, int, int]]:
    rows = server.sql(
        "SELECT part_number, start_offset, size FROM upload_parts WHERE upload_id = :id "
        "ORDER BY part_number",
        id=upload_id,
    )
    return [(int(r[0]), int(r[1]), int(r[2])) for r in rows]


def _multipart_uploads(s3: S3Server, bucket: str) -> list[str]:
    listed = s3.client().list_multipart_uploads(Bucket=bucket)
    return [item["Key"] for item in listed.get("Uploads", [])]


@pytest.fixture
def stall() -> Iterator[threading.Event]:
    gate = threading.Event()
    yield gate
    gate.set()


def test_a_patch_cut_by_sigkill_on_one_server_is_resumed_on_another(
    s3: S3Server, tmp_path: Path, stall: threading.Event
) -> None:
    bucket = s3.bucket()
    first = launch(tmp_path / "a", _servers_env(s3, bucket), tenants=("acme",))
    second: TusServer | None = None
    try:
        data = _text(9 * MB + 4567)
        url = first.create(len(data), batch="two-servers", filename="words.txt")
        upload_id = upload_id_of(url)
        assert first.upload_row(upload_id).store_upload_id  # started with the upload

        def body() -> Iterator[bytes]:
            yield from (data[at : at + 256 * 1024] for at in range(0, 7 * MB, 256 * 1024))
            stall.wait(60)  # A is killed while it waits for the rest of this body

        cut: list[BaseException] = []

        def send() -> None:
            try:
                httpx.patch(
                    url, content=body(), timeout=60,
                    headers=first.headers("acme", **{
                        "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
                    }),
                )  # fmt: skip
            except httpx.HTTPError as exc:
                cut.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 60
        while first.upload_row(upload_id).upload_offset < PART:
            assert time.monotonic() < deadline, "the first part was not recorded"
            time.sleep(0.02)
        first.kill()
        stall.set()
        sender.join(timeout=30)
        assert cut, "the PATCH should have failed when its server died"
        # What the ledger counted is exactly the part the store confirmed.
        assert _parts(first, upload_id) == [(1, 0, PART)]
        assert first.upload_row(upload_id).upload_offset == PART
        assert s3.keys(bucket) == []  # parts are no objects until the upload completes

        second = _second_server(first, tmp_path / "b")
        head = httpx.head(
            f"{second.endpoint}/{upload_id}", headers=second.headers("acme"), timeout=10
        )
        assert head.status_code == 200 and head.headers["Upload-Offset"] == str(PART)

        middle = data[PART : 8 * MB + 123]
        deadline = time.monotonic() + 30
        while (answer := _patch(second, url, PART, middle)).status_code == 423:
            assert time.monotonic() < deadline, "A's lease never ran out"
            time.sleep(0.2)  # A's lease (2 s) is still running: it cannot be proved dead
        assert answer.status_code == 204, answer.text
        assert answer.headers["Upload-Offset"] == str(8 * MB + 123)
        tail = first.sql(
            "SELECT start_offset FROM upload_tails WHERE upload_id = :id", id=upload_id
        )
        assert [int(r[0]) for r in tail] == [PART]  # less than a part: kept in the ledger

        rest = data[8 * MB + 123 :]
        spoiled = _patch(
            second, url, 8 * MB + 123, rest, **{"Upload-Checksum": _sha256_header(b"x")}
        )
        assert spoiled.status_code == 460, spoiled.text
        assert first.upload_row(upload_id).upload_offset == 8 * MB + 123
        # Once more on server A, restarted: any server takes any request.
        first.start()
        done = _patch(first, url, 8 * MB + 123, rest, **{"Upload-Checksum": _sha256_header(rest)})
        assert done.status_code == 204, done.text

        [doc] = first.sql(
            "SELECT id, source, source_sha256, source_size FROM documents "
            "WHERE batch_id = 'two-servers'"
        )
        key = f"uploads/acme/two-servers/tus-{upload_id}"
        assert doc.source == f"s3://{bucket}/{key}"
        assert (doc.source_sha256, doc.source_size) == (hashlib.sha256(data).hexdigest(), len(data))
        stored = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert stored == data  # byte for byte: no part counted twice, none missing
        assert s3.keys(bucket) == [key] and _multipart_uploads(s3, bucket) == []
        assert _parts(first, upload_id) == []
        for each in (first, second):  # neither server kept a byte on its disk
            kept = [p for p in (each.home / "storage").rglob("*") if p.is_file()]
            assert [p.name for p in kept] in ([], [".ledger-storage"])

        worker = start_worker(
            first.sync_url, ["two-servers"], tmp_path / "workers", env=s3.env(),
            home=tmp_path / "worker-home", poll_seconds=0.05,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not batch_complete(first.sync_url, "two-servers"):
                assert time.monotonic() < deadline, "the worker did not index the document"
                time.sleep(0.1)
        finally:
            stop_all([worker])
        [(status, chunks)] = first.sql(
            "SELECT d.status, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
            "FROM documents d WHERE d.batch_id = 'two-servers'"
        )
        assert status == "done" and chunks > 0
    finally:
        for server in (first, second):
            if server is not None and server.proc is not None and server.proc.poll() is None:
                server.stop()


def test_termination_and_expiry_abort_the_multipart_upload(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    env = _servers_env(s3, bucket, LEDGER_TUS_EXPIRY_SECONDS="3", LEDGER_TUS_CLEANUP_SECONDS="0.5")
    server = launch(tmp_path / "a", env, tenants=("acme",))
    try:
        data = _text(PART + 1000)
        urls = [server.create(None, batch="ended", filename=f"{n}.txt") for n in ("gone", "late")]
        for url in urls:
            answer = _patch(server, url, 0, data)
            assert answer.status_code == 204, answer.text
        ids = [upload_id_of(url) for url in urls]
        assert all(_parts(server, upload_id) == [(1, 0, PART)] for upload_id in ids)
        assert len(_multipart_uploads(s3, bucket)) == 2

        ended = httpx.delete(urls[0], headers=server.headers("acme"), timeout=10)
        assert ended.status_code == 204, ended.text
        assert len(_multipart_uploads(s3, bucket)) == 1
        assert _parts(server, ids[0]) == []
        assert (
            server.sql("SELECT count(*) FROM upload_tails WHERE upload_id = :id", id=ids[0])[0][0]
            == 0
        )

        def cleaned() -> bool:
            return _multipart_uploads(s3, bucket) == [] and _parts(server, ids[1]) == []

        deadline = time.monotonic() + 30
        while not cleaned():  # expired (3 s after its last write), then cleaned up
            assert time.monotonic() < deadline, "the expired upload was not cleaned up"
            time.sleep(0.2)
        assert server.upload_row(ids[1]).state == "expired"
        assert s3.keys(bucket) == []
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def test_empty_and_one_request_uploads_complete_into_objects(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.bucket()
    server = launch(tmp_path / "a", _servers_env(s3, bucket), tenants=("acme",))
    try:
        empty = server.create(0, batch="small", filename="empty.txt")
        assert server.upload_row(upload_id_of(empty)).state == "complete"
        data = _text(1000)
        headers = server.headers(
            "acme",
            **{"Upload-Length": str(len(data)), "Upload-Checksum": _sha256_header(data),
               "Upload-Metadata": metadata(batch="small", filename="one.txt"),
               "Content-Type": "application/offset+octet-stream"},
        )  # fmt: skip
        made = httpx.post(server.endpoint, headers=headers, content=data, timeout=30)
        assert made.status_code == 201 and made.headers["Upload-Offset"] == str(len(data))
        one = upload_id_of(made.headers["Location"])
        stored = {
            row.source.split("/", 3)[3]: row.source_size
            for row in server.sql("SELECT source, source_size FROM documents")
        }
        key = "uploads/acme/small/tus-"
        assert stored == {f"{key}{upload_id_of(empty)}": 0, f"{key}{one}": len(data)}
        client = s3.client()
        assert client.get_object(Bucket=bucket, Key=f"{key}{one}")["Body"].read() == data
        assert sorted(s3.keys(bucket)) == sorted(stored) and _multipart_uploads(s3, bucket) == []
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


pytestmark = pytest.mark.timeout(240)
