"""The API server with in-process workers: a batch runs to the end with no outside help."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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


async def test_in_process_workers_finish_a_batch(worker_server: Server) -> None:
    folder = worker_server.root / "docs"
    folder.mkdir()
    for i in range(20):
        (folder / f"{i}.txt").write_text(f"document {i}")
    async with worker_server.client("acme") as client:
        created = await client.post(
            "/api/v1/batches", json={"id": "w1", "processor": "noop", "paths": [str(folder)]}
        )
        assert created.status_code == 201, created.text

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
    folder = worker_server.root / "indexed"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.md").write_text(f"# Note {i}\n\nAbout the pangolin, part {i}.")
    async with worker_server.client("acme") as client:

        async def run_to_end(batch_id: str) -> dict[str, int]:
            body = {"id": batch_id, "processor": "ingest", "paths": [str(folder)]}
            created = await client.post("/api/v1/batches", json=body)
            assert created.status_code == 201, created.text
            for _ in range(600):
                progress = (await client.get(f"/api/v1/batches/{batch_id}")).json()
                if progress["percent"] == 100.0:
                    return {k: v for k, v in progress["batch"]["counts"].items() if v}
                await asyncio.sleep(0.05)
            raise AssertionError(f"batch {batch_id} did not finish")

        assert await run_to_end("index-1") == {"done": 6}
        # The same files again, in a new batch: already indexed, so skipped at creation.
        body = {"id": "index-2", "processor": "ingest", "paths": [str(folder)]}
        created = await client.post("/api/v1/batches", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["counts"]["skipped"] == 6
        assert created.json()["completed_at"] is not None
        docs = (await client.get("/api/v1/batches/index-2/documents")).json()["items"]
        assert {d["result"]["reason"].split(":")[0] for d in docs} == {"unchanged"}
