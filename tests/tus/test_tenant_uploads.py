"""Tenants and uploads over HTTP: a pending upload's batch is its tenant's, a tenant's
unfinished uploads stay within its quota, and a refused creation leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.tus.conftest import TusServer, launch, metadata, upload_id_of

QUOTA = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusServer]:
    srv = launch(
        tmp_path_factory.mktemp("tus-tenants"),
        {"LEDGER_TENANT_UPLOAD_QUOTA_BYTES": str(QUOTA), "LEDGER_TUS_MAX_BYTES": "500"},
    )
    yield srv
    srv.stop()


def _creation(
    server: TusServer, tenant: str, batch: str, length: int, **extra: str
) -> dict[str, str]:
    return server.headers(
        tenant, **{"Upload-Length": str(length), "Upload-Metadata": metadata(batch=batch), **extra}
    )


def _append(server: TusServer, url: str, offset: int, body: bytes) -> httpx.Response:
    headers = server.headers(
        "acme",
        **{"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
    )
    return httpx.patch(url, headers=headers, content=body)


def test_another_tenant_cannot_take_a_pending_uploads_batch(server: TusServer) -> None:
    url = server.create(10, batch="a-pending", tenant="acme")
    refused = httpx.post(server.endpoint, headers=_creation(server, "globex", "a-pending", 5))
    assert refused.status_code == 409, refused.text
    batch = httpx.post(
        f"{server.base_url}/api/v1/batches",
        json={"id": "a-pending", "processor": "ingest"},
        headers=server.headers("globex"),
    )
    assert batch.status_code == 409, batch.text
    assert server.sql("SELECT DISTINCT owner FROM uploads WHERE batch_id = 'a-pending'") == [
        ("acme",)
    ]

    assert _append(server, url, 0, b"0123456789").status_code == 204
    row = server.upload_row(upload_id_of(url))
    assert (row.state, row.document_id is not None) == ("complete", True)
    assert server.sql("SELECT owner FROM batches WHERE id = 'a-pending'") == [("acme",)]
    assert server.sql("SELECT count(*) FROM documents WHERE batch_id = 'a-pending'") == [(1,)]


def test_a_tenants_unfinished_uploads_stay_within_its_quota(server: TusServer) -> None:
    def create(tenant: str, batch: str, length: int) -> httpx.Response:
        return httpx.post(server.endpoint, headers=_creation(server, tenant, batch, length))

    before = server.sql("SELECT count(*) FROM uploads WHERE owner = 'acme'")
    assert create("acme", "quota-1", 500).status_code == 201
    assert create("acme", "quota-1", 400).status_code == 201
    over = create("acme", "quota-2", 200)
    assert over.status_code == 413, over.text
    assert "quota" in over.json()["detail"]
    # Nothing left behind: one row per accepted upload, and no batch for the refused one.
    after = server.sql("SELECT count(*) FROM uploads WHERE owner = 'acme'")
    assert after[0][0] == before[0][0] + 2
    assert server.sql("SELECT count(*) FROM batches WHERE id = 'quota-2'") == [(0,)]
    assert create("globex", "quota-g", 500).status_code == 201  # another tenant's own quota


def test_a_creation_with_too_many_bytes_leaves_no_receiving_upload(
    server: TusServer, tmp_path: Path
) -> None:
    offset_stream = {"Content-Type": "application/offset+octet-stream"}
    announced = httpx.post(
        server.endpoint,
        headers=_creation(server, "globex", "too-many", 4, **offset_stream),
        content=b"123456",
    )
    assert announced.status_code == 413
    assert server.sql("SELECT count(*) FROM uploads WHERE batch_id = 'too-many'") == [(0,)]

    def body() -> Iterator[bytes]:  # chunked: the excess shows only as the bytes arrive
        yield b"1234"
        yield b"5678"

    streamed = httpx.post(
        server.endpoint,
        headers=_creation(server, "globex", "too-many", 6, **offset_stream),
        content=body(),
    )
    assert streamed.status_code == 413
    rows = server.sql("SELECT state, path FROM uploads WHERE batch_id = 'too-many'")
    assert [state for state, _ in rows] == ["terminated"]
    assert not Path(rows[0][1]).exists()
