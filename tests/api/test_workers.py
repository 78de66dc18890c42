"""The API server with in-process workers: a batch runs to the end with no outside help."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.api.sse import read_events


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("workers"),
        {"LEDGER_AUTH": "on", "LEDGER_SERVE_WORKERS": "true", "LEDGER_POLL_SECONDS": "0.05"},
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


def write_folder(server: Server, name: str, texts: dict[str, str]) -> Path:
    folder = server.root / name
    folder.mkdir()
    for file_name, text in texts.items():
        (folder / file_name).write_text(text)
    return folder


async def create_batch(
    client: httpx.AsyncClient, batch_id: str, processor: str, folder: Path
) -> Any:
    body = {"id": batch_id, "processor": processor, "paths": [str(folder)]}
    created = await client.post("/api/v1/batches", json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def test_in_process_workers_finish_a_batch(worker_server: Server) -> None:
    folder = write_folder(worker_server, "docs", {f"{i}.txt": f"document {i}" for i in range(20)})
    async with worker_server.client("acme") as client:
        await create_batch(client, "w1", "noop", folder)

        async def watch() -> list[str]:
            kinds = []
            async for event in read_events(client, "/api/v1/batches/w1/events"):
                kinds.append(event.event)
                if event.event == "end":
                    break
            return kinds

        kinds = await asyncio.wait_for(watch(), 30)
        assert kinds.count("document_done") == 20
        progress = (await client.get("/api/v1/batches/w1")).json()
        assert progress["batch"]["counts"]["done"] == 20
        assert progress["percent"] == 100.0


async def test_a_batch_of_indexed_files_is_skipped_when_created(worker_server: Server) -> None:
    notes = {f"{i}.md": f"# Note {i}\n\nAbout the pangolin, part {i}." for i in range(6)}
    folder = write_folder(worker_server, "indexed", notes)
    async with worker_server.client("acme") as client:
        await create_batch(client, "index-1", "ingest", folder)
        for _ in range(600):
            progress = (await client.get("/api/v1/batches/index-1")).json()
            if progress["percent"] == 100.0:
                break
            await asyncio.sleep(0.05)
        assert {k: v for k, v in progress["batch"]["counts"].items() if v} == {"done": 6}
        # The same files again, in a new batch: already indexed, so skipped at creation.
        created = await create_batch(client, "index-2", "ingest", folder)
        assert created["counts"]["skipped"] == 6
        assert created["completed_at"] is not None
        docs = (await client.get("/api/v1/batches/index-2/documents")).json()["items"]
        assert {d["result"]["reason"].split(":")[0] for d in docs} == {"unchanged"}
