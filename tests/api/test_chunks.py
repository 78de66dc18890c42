"""Chunks out of the index through a real server, on SQLite and PostgreSQL: a batch's
chunks as NDJSON with keyset paging and vectors, one document's chunks as JSON pages,
uploads named by their file name, and nothing of another tenant's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.index.vectors import to_bytes
from ledger.worker.runtime import Worker
from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import settings_for, sql
from tests.pipeline.support import sync_url_of

WORDS = ["lighthouse", "keeper", "harbour", "beacon", "tide"]


@pytest.fixture
def chunk_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, {"LEDGER_AUTH": "on"}, tenants=("acme", "globex"), db_url=db_url)
    yield srv
    stop_server(srv)


def lines(body: str) -> list[dict[str, Any]]:
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def store_vector(url: str, chunk_id: int, vector: list[float], model: str = "m1") -> None:
    """A chunk's vector written with SQL, as the embedding stage would (no embedder)."""
    sql(
        url,
        "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at) "
        "VALUES (:c, :m, :d, :v, CURRENT_TIMESTAMP)",
        c=chunk_id,
        m=model,
        d=len(vector),
        v=to_bytes(vector),
    )


async def process(server: Server, batch_id: str) -> None:
    settings = settings_for(server.db_url, home=server.home, poll_seconds=0.05)
    async with await Ledger.open(settings) as ledger:
        await Worker(ledger, batch_ids=[batch_id]).run(until_complete=True)


async def test_batch_chunks_stream_as_ndjson_with_keyset_paging(chunk_server: Server) -> None:
    server = chunk_server
    folder = server.root / "notes"
    folder.mkdir()
    for i in range(12):
        # Long enough for several chunks each.
        text = "\n\n".join(
            f"{WORDS[(i + j) % 5]} paragraph {j} of file {i}. " * 40 for j in range(6)
        )
        (folder / f"note{i:02d}.txt").write_text(text, encoding="utf-8")
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": "notes", "paths": [str(folder)]})
        assert created.status_code == 201, created.text
        upload = await client.post(
            "/api/v1/batches/notes/files",
            files=[("f", ("Field Report.txt", b"The beacon was lit at dusk.\n", "text/plain"))],
        )
        assert upload.status_code == 201, upload.text
    await process(server, "notes")
    url = sync_url_of(server.db_url)
    expected = sql(
        url,
        "SELECT c.id, c.document_id, c.ordinal, c.text, c.page, c.char_start, c.char_end, "
        "d.source, d.source_sha256 FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE c.batch_id = 'notes' ORDER BY c.id",
    )
    assert len(expected) > 24  # several chunks per file

    async with server.client("acme") as client:
        whole = await client.get("/api/v1/batches/notes/chunks")
        assert whole.status_code == 200, whole.text
        assert whole.headers["content-type"].startswith("application/x-ndjson")
        rows = lines(whole.text)
        assert rows[-1] == {"next_after": None}
        got = rows[:-1]
        assert [r["chunk_id"] for r in got] == [e.id for e in expected]
        for row, e in zip(got, expected, strict=True):
            assert (row["document_id"], row["ordinal"], row["text"]) == (
                e.document_id, e.ordinal, e.text,
            )  # fmt: skip
            assert (row["page"], row["char_start"], row["char_end"]) == (
                e.page, e.char_start, e.char_end,
            )  # fmt: skip
            assert row["document_sha256"] == e.source_sha256 and len(row["text_sha256"]) == 64
            assert row["vectors"] is None
        names = {r["source_name"] for r in got}
        assert "Field Report.txt" in names  # an upload by its name, never its storage path
        stored = {e.source for e in expected if not e.source.startswith(str(folder))}
        assert len(stored) == 1 and not stored & names
        assert all(str(server.home) not in n for n in names)
        assert "notes/note00.txt" in names  # relative to the folder the batch was made from

        # Keyset paging: limit pages end with the cursor of the next.
        paged: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await client.get(
                "/api/v1/batches/notes/chunks", params={"after": after, "limit": 7}
            )
            assert page.status_code == 200
            rows = lines(page.text)
            paged.extend(rows[:-1])
            assert len(rows) - 1 <= 7
            if rows[-1]["next_after"] is None:
                break
            after = rows[-1]["next_after"]
            assert after == rows[-2]["chunk_id"]
        assert [r["chunk_id"] for r in paged] == [e.id for e in expected]

        # Vectors: each chunk's stored vectors by model.
        store_vector(url, expected[0].id, [3.0, 0.0, 4.0])
        with_vectors = lines(
            (
                await client.get(
                    "/api/v1/batches/notes/chunks", params={"vectors": "true", "limit": 2}
                )
            ).text
        )
        assert with_vectors[0]["vectors"] == {"m1": pytest.approx([0.6, 0.0, 0.8])}
        assert with_vectors[1]["vectors"] == {}
        assert with_vectors[-1] == {"next_after": with_vectors[1]["chunk_id"]}

    # Another tenant's batch is not found, and nothing of it is streamed.
    async with server.client("globex") as client:
        other = await client.get("/api/v1/batches/notes/chunks")
        assert other.status_code == 404
        doc = expected[0].document_id
        assert (
            await client.get(f"/api/v1/batches/notes/documents/{doc}/chunks")
        ).status_code == 404


async def test_document_chunks_page_in_order(chunk_server: Server) -> None:
    server = chunk_server
    folder = server.root / "one"
    folder.mkdir()
    (folder / "long.txt").write_text(
        "\n\n".join(f"harbour section {j}. " * 60 for j in range(10)), encoding="utf-8"
    )
    (folder / "short.txt").write_text("a short note about the tide\n", encoding="utf-8")
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": "one", "paths": [str(folder)]})
        assert created.status_code == 201, created.text
    await process(server, "one")
    url = sync_url_of(server.db_url)
    (doc_id,) = sql(url, "SELECT id FROM documents WHERE source LIKE '%long.txt'")[0]
    ordinals = [r[0] for r in sql(
        url, "SELECT ordinal FROM chunks WHERE document_id = :d ORDER BY ordinal", d=doc_id
    )]  # fmt: skip
    assert len(ordinals) > 3

    async with server.client("acme") as client:
        seen: list[dict[str, Any]] = []
        after = -1
        while True:
            page = await client.get(
                f"/api/v1/batches/one/documents/{doc_id}/chunks",
                params={"after": after, "limit": 3},
            )
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["document_id"] == doc_id and len(body["items"]) <= 3
            seen.extend(body["items"])
            if body["next_after"] is None:
                break
            after = body["next_after"]
        assert [c["ordinal"] for c in seen] == ordinals
        assert {c["document_id"] for c in seen} == {doc_id}
        assert all(c["source_name"].endswith("long.txt") for c in seen)
        # A document of another batch, or none at all: not found.
        missing = await client.get("/api/v1/batches/one/documents/999999/chunks")
        assert missing.status_code == 404
        assert (await client.get("/api/v1/batches/nope/chunks")).status_code == 404
