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
