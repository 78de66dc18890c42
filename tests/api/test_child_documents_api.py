"""Child documents through a real server, on SQLite and PostgreSQL: an archive in a folder
given to the API becomes child documents that the document responses show with their
parent and member path, and that the chunk stream cites as ``archive!/member``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.api.test_chunks import lines, process
from tests.ingest import container_fixtures as cf


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, {"LEDGER_AUTH": "on"}, tenants=("acme",), db_url=db_url)
    yield srv
    stop_server(srv)


async def test_children_show_their_parent_and_member_path(server: Server) -> None:
    folder = server.root / "inbox"
    folder.mkdir()
    cf.make_zip(
        folder / "box.zip",
        {"notes/kestrel.txt": b"The kestrel hovers.\n", "../escape.txt": b"refused\n"},
    )
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": "arc", "paths": [str(folder)]})
        assert created.status_code == 201, created.text
    await process(server, "arc")
    async with server.client("acme") as client:
        listed = await client.get("/api/v1/batches/arc/documents")
        assert listed.status_code == 200, listed.text
        items = listed.json()["items"]
        (parent,) = [d for d in items if d["parent_id"] is None]
        (child,) = [d for d in items if d["parent_id"] is not None]
        assert parent["member_path"] is None and parent["status"] == "done"
        assert parent["result"]["members"] == 1
        assert parent["result"]["skipped"] == [
            {"member": "../escape.txt", "reason": "refused: '..' in its path"}
        ]
        assert child["parent_id"] == parent["id"] and child["member_path"] == "notes/kestrel.txt"
        assert child["status"] == "done"
        one = await client.get(f"/api/v1/documents/{child['id']}")
        assert one.status_code == 200, one.text
        assert one.json()["document"]["member_path"] == "notes/kestrel.txt"
        stream = await client.get("/api/v1/batches/arc/chunks")
        assert stream.status_code == 200, stream.text
        rows = [r for r in lines(stream.text) if "chunk_id" in r]
        assert [r["source_name"] for r in rows] == ["inbox/box.zip!/notes/kestrel.txt"]
        assert rows[0]["document_id"] == child["id"]


async def test_an_uploaded_archive_is_cited_by_its_upload_name(server: Server) -> None:
    archive = cf.make_zip(server.root / "local.zip", {"swift.txt": b"The swift flies.\n"})
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": "up", "paths": []})
        assert created.status_code == 201, created.text
        upload = await client.post(
            "/api/v1/batches/up/files",
            files=[("f", ("Field Archive.zip", archive.read_bytes(), "application/zip"))],
        )
        assert upload.status_code == 201, upload.text
    await process(server, "up")
    async with server.client("acme") as client:
        stream = await client.get("/api/v1/batches/up/chunks")
        rows = [r for r in lines(stream.text) if "chunk_id" in r]
        assert [r["source_name"] for r in rows] == ["Field Archive.zip!/swift.txt"]
        hits = await client.get("/api/v1/search", params={"q": "swift"})
        assert hits.status_code == 200, hits.text
        (hit,) = hits.json()["hits"]
        assert hit["source"] == hit["source_name"] == "Field Archive.zip!/swift.txt"
