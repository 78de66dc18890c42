"""Selecting server files with ``include``/``exclude`` patterns, and uploads judged by their
original file name, through the real server."""

from __future__ import annotations

import uuid
from pathlib import Path

from ledger.app import Ledger
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker
from tests.api.conftest import Server
from tests.ingest.not_documents import make_tree, png_bytes


async def _sources(ledger: Ledger, batch_id: str, root: Path) -> list[str]:
    """The batch's sources relative to ``root`` (resolved)."""
    page = await ledger.reads.documents(batch_id, limit=100)
    return sorted(str(Path(d.source).relative_to(root)) for d in page.items)


async def test_include_and_exclude_select_server_files_at_any_depth(
    server: Server, ledger: Ledger
) -> None:
    root = make_tree(server.root / f"sel-{uuid.uuid4().hex[:8]}").resolve()
    async with server.client("acme") as client:
        pdfs = await client.post(
            "/api/v1/batches",
            json={"processor": "noop", "paths": [str(root)], "include": ["**/*.pdf"]},
        )
        assert pdfs.status_code == 201, pdfs.text
        assert await _sources(ledger, pdfs.json()["id"], root) == [
            "a/b/two.pdf",
            "a/one.pdf",
            "top.pdf",
        ]
        some = await client.post(
            "/api/v1/batches",
            json={
                "processor": "noop",
                "paths": [str(root)],
                "include": ["*.pdf", "*.txt"],
                "exclude": ["a/b/", "readme.*"],
            },
        )
        assert some.status_code == 201, some.text
        assert await _sources(ledger, some.json()["id"], root) == [
            "a/notes.txt",
            "a/one.pdf",
            "top.pdf",
        ]
        nothing = await client.post(
            "/api/v1/batches",
            json={"processor": "noop", "paths": [str(root)], "exclude": ["**"]},
        )
        assert nothing.status_code == 400, nothing.text  # as for a glob matching nothing
        assert "selected by include/exclude" in nothing.json()["detail"]


async def test_invalid_patterns_are_422(server: Server) -> None:
    root = make_tree(server.root / f"bad-{uuid.uuid4().hex[:8]}")
    async with server.client("acme") as client:
        for body in (
            {"paths": [str(root)], "include": ["!"]},
            {"paths": [str(root)], "exclude": ["a\\"]},
            {"paths": [str(root)], "include": [""]},
        ):
            r = await client.post("/api/v1/batches", json={"processor": "noop", **body})
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert "pattern" in r.text or "include" in r.text
        # Patterns without paths select nothing: the same 400 as a glob without paths.
        alone = await client.post("/api/v1/batches", json={"include": ["*.pdf"]})
        assert alone.status_code == 400, alone.text


async def test_an_upload_is_skipped_or_read_by_its_original_name(
    server: Server, ledger: Ledger
) -> None:
    batch_id = f"up-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": batch_id})
        assert created.status_code == 201, created.text
        upload = await client.post(
            f"/api/v1/batches/{batch_id}/files",
            files=[
                ("files", ("logo.png", b"text under an image's name", "image/png")),
                ("files", ("notes.txt", b"plain notes about the release", "text/plain")),
                ("files", ("diagram", png_bytes(), "application/octet-stream")),
            ],
        )
        assert upload.status_code == 201, upload.text
    await Worker(ledger, batch_ids=[batch_id]).run(until_complete=True)
    page = await ledger.reads.documents(batch_id, limit=10)
    by_name = {(d.meta or {}).get("filename"): d for d in page.items}
    assert by_name["notes.txt"].status is DocumentStatus.DONE, by_name["notes.txt"].error_message
    for name, why in (("logo.png", "PNG image"), ("diagram", "PNG image")):
        doc = by_name[name]
        assert doc.status is DocumentStatus.SKIPPED, (name, doc.error_message)
        assert doc.result is not None and doc.result["reason"] == f"excluded_type: {why}"


async def test_include_all_types_is_checked_at_create(server: Server) -> None:
    async with server.client("acme") as client:
        bad = await client.post("/api/v1/batches", json={"options": {"include_all_types": "yes"}})
        assert bad.status_code == 422, bad.text
        assert "include_all_types must be true or false" in bad.json()["detail"]
        good = await client.post("/api/v1/batches", json={"options": {"include_all_types": True}})
        assert good.status_code == 201, good.text
        assert good.json()["options"] == {"include_all_types": True}
