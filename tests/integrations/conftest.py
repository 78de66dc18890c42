"""One real ledger server for the adapter tests: uvicorn on loopback over a SQLite file, API
keys required, tenants ``acme`` and ``globex`` (keys made by the core, as ``ledger keys
create`` makes them), a real embedding server on loopback behind an operator profile
(``bow``), and a processed batch of each tenant made from text, Markdown and PDF files
written here. ``LIBRARY`` (acme's) and ``RIVAL`` (globex's) both mention ``WORD``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.worker.runtime import Worker
from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.embed.server import EmbeddingServer
from tests.embed.support import PROFILE, embedder_profiles
from tests.ingest.fixtures import make_pdf
from tests.pipeline.support import pipeline_settings, sync_url_of

WORD = "quokka"
LIBRARY = "library"
RIVAL = "rival"
# How each of acme's files is cited: relative to the folder the batch was made from.
CITED = {"library/harbour.txt", "library/guide.md", "library/survey.pdf", "library/log.txt"}


@dataclass
class Corpus:
    server: Server
    embedder: EmbeddingServer
    chunk_ids: list[int]  # acme's batch, in chunk id order
    pages: dict[int, int | None]  # chunk id -> page

    def key(self, tenant: str) -> str:
        return self.server.keys[tenant]


def write_library(folder: Path) -> None:
    folder.mkdir()
    (folder / "harbour.txt").write_text(
        f"The {WORD} sat on the harbour wall and watched the tide.\n", encoding="utf-8"
    )
    (folder / "guide.md").write_text(
        f"# Field guide\n\n## Marsupials\n\nThe {WORD} is a small marsupial of Rottnest.\n",
        encoding="utf-8",
    )
    make_pdf(
        folder / "survey.pdf",
        ["Nothing to see on this page. " * 20, f"A {WORD} was seen near the lighthouse. " * 5],
    )
    # Enough chunks for a stream that is cut and resumed several times.
    entry = "the keeper logged the beacon and the weather. " * 3
    paragraphs = [f"Entry {i}: {entry}" for i in range(60)]
    (folder / "log.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


async def submit_and_process(server: Server, profiles: str) -> None:
    async with server.client("acme") as client:
        made = await client.post(
            "/api/v1/batches",
            json={"id": LIBRARY, "paths": [str(server.root / LIBRARY)],
                  "options": {"embedder": PROFILE}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    async with server.client("globex") as client:
        made = await client.post(
            "/api/v1/batches", json={"id": RIVAL, "paths": [str(server.root / RIVAL)]}
        )
        assert made.status_code == 201, made.text
    settings = pipeline_settings(server.db_url, server.home, embedders=profiles)
    async with await Ledger.open(settings) as ledger:
        await Worker(ledger, batch_ids=[LIBRARY, RIVAL]).run(until_complete=True)


@pytest.fixture(scope="package")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    embedder = EmbeddingServer(max_tokens=64).start()
    profiles = embedder_profiles(embedder.base_url)
    server = start_server(
        tmp_path_factory.mktemp("adapters"),
        {"LEDGER_AUTH": "on", "LEDGER_RATE_LIMIT_PER_MINUTE": "0", "LEDGER_EMBEDDERS": profiles},
        tenants=("acme", "globex"),
    )
    try:
        write_library(server.root / LIBRARY)
        (server.root / RIVAL).mkdir()
        (server.root / RIVAL / "secret.txt").write_text(f"Globex keeps a {WORD} too.\n")
        asyncio.run(submit_and_process(server, profiles))
        url = sync_url_of(server.db_url)
        failed = sql(url, "SELECT source, error_code FROM documents WHERE status != 'done'")
        assert not failed, failed
        rows = sql(url, f"SELECT id, page FROM chunks WHERE batch_id = '{LIBRARY}' ORDER BY id")
        yield Corpus(server, embedder, [r.id for r in rows], {r.id: r.page for r in rows})
    finally:
        stop_server(server)
        embedder.down()
