"""Search hits cite their source as people know it, through a real server and the real
command line, on SQLite and PostgreSQL: an uploaded file by the name it was uploaded with
(never the path it is stored under), a PDF hit with its page, every hit with its offsets,
document and batch; in text, vector and the CLI's search alike."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from tests.api.conftest import Server, start_server, stop_server
from tests.api.test_chunks import process, store_vector
from tests.cli.conftest import Cli
from tests.conftest import settings_for, sql
from tests.ingest.fixtures import make_pdf
from tests.pipeline.support import sync_url_of

WORD = "quokka"
CITED = {"Field Report.txt", "Survey Notes.pdf", "harbour.txt"}


@pytest.fixture
def cite_server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, {"LEDGER_AUTH": "on"}, tenants=("acme",), db_url=db_url)
    yield srv
    stop_server(srv)


def check_hit(hit: dict[str, Any], folder: Path, chunks: dict[int, Any]) -> None:
    name = hit["source_name"]
    assert name in {"Field Report.txt", "Survey Notes.pdf", "docs/harbour.txt"}, hit
    # A server file: its path relative to the folder given, under that folder's name.
    assert hit["source"] == (str(folder / "harbour.txt") if name == "docs/harbour.txt" else name)
    chunk = chunks[hit["chunk_id"]]
    assert (hit["batch_id"], hit["document_id"]) == ("cite", chunk.document_id)
    assert (hit["char_start"], hit["char_end"]) == (chunk.char_start, chunk.char_end)
    assert hit["page"] == chunk.page
    assert (hit["page"] is not None) == (name == "Survey Notes.pdf"), hit


async def test_search_hits_cite_uploads_by_their_file_name(cite_server: Server) -> None:
    server = cite_server
    folder = server.root / "docs"
    folder.mkdir()
    (folder / "harbour.txt").write_text(f"The {WORD} sat on the harbour wall.\n")
    pdf = make_pdf(
        server.root / "survey.pdf",
        ["Nothing to see on this page. " * 20, f"A {WORD} was seen here. " * 10],
    )
    batch = {"id": "cite", "paths": [str(folder)], "options": {"chunk_size": 200}}
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json=batch)
        assert created.status_code == 201, created.text
        files = [
            ("f", ("Field Report.txt", io.BytesIO(f"A {WORD} at dusk.\n".encode()), "text/plain")),
            ("f", ("Survey Notes.pdf", io.BytesIO(pdf.read_bytes()), "application/pdf")),
        ]
        upload = await client.post("/api/v1/batches/cite/files", files=files)
        assert upload.status_code == 201, upload.text
    await process(server, "cite")
    url = sync_url_of(server.db_url)
    stored = [
        r.source
        for r in sql(url, "SELECT source FROM documents WHERE batch_id = 'cite'")
        if not r.source.startswith(str(folder))
    ]
    assert len(stored) == 2  # the uploads, kept under storage paths of their own
    hidden = [*stored, *(Path(s).name for s in stored), str(server.home)]
    chunks = {
        c.id: c for c in sql(url, "SELECT id, document_id, char_start, char_end, page FROM chunks")
    }
    assert {c.page for c in chunks.values()} >= {1, 2}

    # The API, full text.
    async with server.client("acme") as client:
        found = await client.get("/api/v1/search", params={"q": WORD})
        assert found.status_code == 200, found.text
    hits = found.json()["hits"]
    assert {Path(h["source_name"]).name for h in hits} == CITED
    for hit in hits:
        check_hit(hit, folder, chunks)
    assert not [s for s in hidden if s in found.text]

    # Vector search: the same citations (vectors stored by hand: no embedder needed). Every
    # chunk has the same vector, so all of them are asked for: ties rank by source.
    for chunk_id in chunks:
        store_vector(url, chunk_id, [1.0, 0.0, 0.0])
    async with await Ledger.open(settings_for(server.db_url, home=server.home)) as ledger:
        nearest = await ledger.index.search_vectors(
            [1.0, 0.0, 0.0], model="m1", k=len(chunks), owner="acme"
        )
    assert len(nearest) == len(chunks)
    assert {Path(h.source_name).name for h in nearest} == CITED
    assert {h.source_name for h in nearest} == {"Field Report.txt", "Survey Notes.pdf",
                                               "docs/harbour.txt"}  # fmt: skip
    assert not {h.source for h in nearest} & set(stored)

    # The command line: JSON and text.
    cli = Cli(server.home)
    cli.env["LEDGER_DATABASE_URL"] = server.db_url
    result = cli("search", WORD, "-k", "10", "--json")
    assert result.code == 0, result.stderr
    cli_hits = result.json()
    assert {Path(h["source_name"]).name for h in cli_hits} == CITED
    for hit in cli_hits:
        check_hit(hit, folder, chunks)
    assert not [s for s in hidden if s in result.stdout]
    shown = cli("search", WORD, "-k", "10")
    assert shown.code == 0, shown.stderr
    assert "Field Report.txt" in shown.stdout and "Survey Notes.pdf  page 2" in shown.stdout
    assert "docs/harbour.txt" in shown.stdout
    assert not [s for s in hidden if s in shown.stdout]
