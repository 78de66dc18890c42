"""Archive members in the object store (``LEDGER_STORAGE_URL``): a zip uploaded to the API
expands, on one worker process, into child documents whose sources are objects under the
storage prefix; another worker process with its own storage folder (so a local path could
not work) reads and indexes them; search cites them by parent and member path; deleting
the batch leaves no member object. A worker killed after writing the objects but before its
finish commits leaves objects that the batch deletion removes too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.helpers.s3 import S3Server
from tests.ingest import container_fixtures as cf
from tests.reliability.support import (
    WorkerProc,
    batch_complete,
    start_worker,
    stop_all,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def bucket(s3: S3Server) -> str:
    return s3.bucket()


@pytest.fixture(scope="module")
def api(s3: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("object-members"),
        {
            **s3.env(),
            "LEDGER_AUTH": "on",
            "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads",
            "LEDGER_TENANT_ROOTS": json.dumps({"acme": [f"s3://{bucket}/in/"]}),
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


def _db(api: Server) -> str:
    return api.db_url.replace("sqlite+aiosqlite://", "sqlite://")


def _worker(
    api: Server, s3: S3Server, bucket: str, batch: str, name: str, **env: str
) -> WorkerProc:
    """A worker on a machine of its own: its own home and storage folder, sharing only the
    database and the store with the API server and the other workers."""
    home = api.home.parent / f"{batch}-{name}"
    return start_worker(
        _db(api),
        [batch],
        api.home.parent / f"logs-{batch}",
        env={**s3.env(), "LEDGER_STORAGE_URL": f"s3://{bucket}/uploads", **env},
        home=home,
        storage_dir=home / "storage",
        poll_seconds=0.05,
        backoff_base_seconds=0.01,
    )


def _files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.name != ".ledger-storage"]


async def _upload_box(api: Server, batch: str, box: Path, kind: str = "application/zip") -> None:
    data = await asyncio.to_thread(box.read_bytes)
    async with api.client("acme") as acme:
        made = await acme.post("/api/v1/batches", json={"id": batch})
        assert made.status_code == 201, made.text
        files = [("files", (box.name, data, kind))]
        stored = await acme.post(f"/api/v1/batches/{batch}/files", files=files)
        assert stored.status_code == 201, stored.text


async def _exited(worker: WorkerProc) -> None:
    await wait_for(lambda: not worker.alive(), timeout=120, what="the worker killing itself")


async def test_members_are_objects_read_by_another_machine_and_deleted_with_the_batch(
    api: Server, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    members = cf.member_bytes(tmp_path / "src")
    inner = cf.make_zip(tmp_path / "inner.zip", {"deep/otter.txt": b"The otter sleeps.\n" * 4})
    members["nested/inner.zip"] = inner.read_bytes()
    box = cf.make_zip(tmp_path / "box.zip", members)
    await _upload_box(api, "members-1", box)
    db = _db(api)

    # The first machine expands the zip and dies right after its finish committed.
    first = _worker(api, s3, bucket, "members-1", "a", LEDGER_TEST_KILL_AT_COMMIT="1")
    try:
        await _exited(first)
    finally:
        stop_all([first])
    (parent_id,) = [r[0] for r in sql(db, "SELECT id FROM documents WHERE parent_id IS NULL")]
    children = sql(
        db,
        "SELECT member_path, source, status, source_mtime_ns, json_extract(meta, '$.etag') "
        "FROM documents WHERE parent_id = :p ORDER BY member_path",
        p=parent_id,
    )
    assert [c[0] for c in children] == sorted({*cf.MEMBER_WORDS, "nested/inner.zip"})
    prefix = f"s3://{bucket}/uploads/members/{parent_id}/"
    for path, source, status, mtime_ns, etag in children:
        assert source.startswith(prefix), (path, source)
        assert status == "pending"
        assert mtime_ns and etag  # recorded as a submit records an object's facts
    # Nothing of the members stayed on the machine that extracted them.
    assert _files_in(api.home.parent / "members-1-a" / "storage") == []

    second = _worker(api, s3, bucket, "members-1", "b")
    try:
        await wait_for(lambda: batch_complete(db, "members-1"), timeout=150, what="batch complete")
    finally:
        stop_all([second])
    rows = sql(db, "SELECT member_path, status, error_code FROM documents ORDER BY id")
    assert all(status == "done" for _, status, _ in rows), rows
    (grandchild,) = sql(db, "SELECT source FROM documents WHERE member_path = 'deep/otter.txt'")
    assert grandchild[0].startswith(f"s3://{bucket}/uploads/members/")
    assert _files_in(api.home.parent / "members-1-b" / "storage") == []

    async with api.client("acme") as acme:
        for path, word in {**cf.MEMBER_WORDS, "deep/otter.txt": "otter"}.items():
            found = await acme.get("/api/v1/search", params={"q": word, "batch": "members-1"})
            assert found.status_code == 200, found.text
            hits = found.json()["hits"]
            assert hits, word
            inside = f"nested/inner.zip!/{path}" if path == "deep/otter.txt" else path
            assert hits[0]["source_name"] == f"box.zip!/{inside}"
        assert any("/members/" in key for key in s3.keys(bucket))
        deleted = await acme.delete("/api/v1/batches/members-1")
        assert deleted.status_code == 204, deleted.text
    assert s3.keys(bucket) == []  # the upload and every member object are gone


async def test_objects_of_a_finish_that_never_committed_go_with_the_batch(
    api: Server, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    box = cf.make_zip(tmp_path / "box.zip", cf.member_bytes(tmp_path / "src"))
    await _upload_box(api, "members-2", box)
    db = _db(api)
    # Killed with its outcome computed (the objects written) but not recorded.
    kill = {"LEDGER_TEST_KILL_AT_COMMIT": "1", "LEDGER_TEST_KILL_WHEN": "before"}
    worker = _worker(api, s3, bucket, "members-2", "a", **kill)
    try:
        await _exited(worker)
    finally:
        stop_all([worker])
    assert sql(db, "SELECT count(*) FROM documents WHERE parent_id IS NOT NULL") == [(0,)]
    (parent_id,) = [r[0] for r in sql(db, "SELECT id FROM documents")]
    left = [k for k in s3.keys(bucket) if k.startswith(f"uploads/members/{parent_id}/")]
    assert len(left) == len(cf.MEMBER_WORDS)  # written before the finish, never adopted
    async with api.client("acme") as acme:
        deleted = await acme.delete("/api/v1/batches/members-2", params={"force": "true"})
        assert deleted.status_code == 204, deleted.text
    assert s3.keys(bucket) == []


async def test_an_emails_attachments_are_objects_and_its_body_stays_the_parents(
    api: Server, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    members = cf.member_bytes(tmp_path / "src")
    mail = cf.make_eml(
        tmp_path / "mail.eml",
        "The quarterly manatee census is attached.",
        {"report.pdf": members["report.pdf"], "minutes.docx": members["notes/minutes.docx"]},
    )
    await _upload_box(api, "members-3", mail, "message/rfc822")
    db = _db(api)
    worker = _worker(api, s3, bucket, "members-3", "a")
    try:
        await wait_for(lambda: batch_complete(db, "members-3"), timeout=150, what="batch complete")
    finally:
        stop_all([worker])
    (parent_id,) = [r[0] for r in sql(db, "SELECT id FROM documents WHERE parent_id IS NULL")]
    keys = [k for k in s3.keys(bucket) if "/members/" in k]
    # In the folder of the attempt that made the children: one, named by its lease token.
    (attempt,) = {k.split("/")[3] for k in keys}
    assert keys == [f"uploads/members/{parent_id}/{attempt}/{n}" for n in ("0.pdf", "1.docx")]
    # The body was indexed as the parent's own and left nothing on the worker's disk.
    assert _files_in(api.home.parent / "members-3-a" / "storage") == []
    async with api.client("acme") as acme:
        for word, cited in {"manatee": "mail.eml", "pelican": "mail.eml!/report.pdf"}.items():
            found = await acme.get("/api/v1/search", params={"q": word, "batch": "members-3"})
            assert [h["source_name"] for h in found.json()["hits"]] == [cited]
        deleted = await acme.delete("/api/v1/batches/members-3")
        assert deleted.status_code == 204, deleted.text
    assert s3.keys(bucket) == []


async def test_a_zip_listed_from_the_store_expands_into_member_objects(
    api: Server, s3: S3Server, bucket: str, tmp_path: Path
) -> None:
    box = cf.make_zip(tmp_path / "box.zip", {"notes/readme.txt": b"A listed albatross.\n" * 3})
    s3.client().put_object(Bucket=bucket, Key="in/run/box.zip", Body=box.read_bytes())
    async with api.client("acme") as acme:
        made = await acme.post(
            "/api/v1/batches", json={"id": "members-4", "paths": [f"s3://{bucket}/in/run/"]}
        )
        assert made.status_code == 201, made.text
    db = _db(api)
    worker = _worker(api, s3, bucket, "members-4", "a")
    try:
        await wait_for(lambda: batch_complete(db, "members-4"), timeout=150, what="batch complete")
    finally:
        stop_all([worker])
    rows = sql(db, "SELECT source, status, parent_id FROM documents ORDER BY id")
    (parent, child) = rows
    assert parent == (f"s3://{bucket}/in/run/box.zip", "done", None)
    assert child[0].startswith(f"s3://{bucket}/uploads/members/")
    assert child[1] == "done"
    async with api.client("acme") as acme:
        found = await acme.get("/api/v1/search", params={"q": "albatross", "batch": "members-4"})
        (hit,) = found.json()["hits"]
        assert hit["source_name"].endswith("box.zip!/notes/readme.txt")
        deleted = await acme.delete("/api/v1/batches/members-4")
        assert deleted.status_code == 204, deleted.text
    # The member objects are gone; the caller's own object is never touched.
    assert s3.keys(bucket) == ["in/run/box.zip"]
