"""Uploads into the object store (``LEDGER_STORAGE_URL``): the API server stores each file as
an object, a worker process on another "machine" (its own home, nothing shared but the
database and the store) reads it, and deleting the batch removes its objects."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.helpers.s3 import S3Server
from tests.reliability.support import batch_complete, start_worker, stop_all, wait_for

BODY = "An uploaded document that lives in a bucket, not on a shared folder. " * 40


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.bucket()


@pytest.fixture(scope="module")
def api(s3: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("object-uploads"),
        {
            **s3.env(),
            "LEDGER_AUTH": "on",
            "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads",
            "LEDGER_TENANT_ROOTS": json.dumps({"acme": []}),
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


async def test_uploads_are_stored_as_objects_read_by_a_worker_and_deleted_with_the_batch(
    api: Server, s3: S3Server, bucket: str
) -> None:
    db = api.db_url.replace("sqlite+aiosqlite://", "sqlite://")
    async with api.client("acme") as acme:
        made = await acme.post("/api/v1/batches", json={"id": "up-1"})
        assert made.status_code == 201, made.text
        files = [
            ("files", (f"doc-{i}.txt", f"{i}: {BODY}".encode(), "text/plain")) for i in range(3)
        ]
        stored = await acme.post("/api/v1/batches/up-1/files", files=files)
        assert stored.status_code == 201, stored.text
    sources = [f["source"] for f in stored.json()["files"]]
    assert all(s.startswith(f"s3://{bucket}/uploads/acme/up-1/") for s in sources)
    assert len(s3.keys(bucket)) == 3
    # The API server kept no copy: nothing has to be shared with the workers.
    kept = [p for p in (api.home / "storage").rglob("*") if p.is_file()]
    assert [p.name for p in kept] in ([], [".ledger-storage"])

    worker = start_worker(
        db, ["up-1"], api.home.parent / "workers", env=s3.env(),
        home=api.home.parent / "worker-home", poll_seconds=0.05,
    )  # fmt: skip
    try:
        await wait_for(lambda: batch_complete(db, "up-1"), timeout=120, what="batch complete")
    finally:
        stop_all([worker])
    rows = sql(db, "SELECT status, json_extract(meta, '$.filename') FROM documents ORDER BY id")
    assert rows == [("done", f"doc-{i}.txt") for i in range(3)]

    async with api.client("acme") as acme:
        deleted = await acme.delete("/api/v1/batches/up-1")
        assert deleted.status_code == 204, deleted.text
    assert s3.keys(bucket) == []  # deletion left no objects behind
