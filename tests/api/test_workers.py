"""The API server with in-process workers: a batch runs to the end with no outside help."""

from __future__ import annotations

import asyncio
import sqlite3
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


async def test_a_row_that_is_not_utf8_fails_alone_and_workers_stay_up(
    worker_server: Server,
) -> None:
    folder = write_folder(worker_server, "fine", {"a.txt": "a", "b.txt": "b"})
    async with worker_server.client("acme") as client:
        await create_batch(client, "w-bad", "noop", folder)
        bad_path = bytes(folder) + b"/bad\xff\xfe.txt"
        with sqlite3.connect(worker_server.home / "ledger.db") as conn:
            # Written by another program: a source whose bytes are not UTF-8.
            conn.execute(
                "INSERT INTO documents (batch_id, source, next_attempt_at, created_at, "
                f"updated_at) SELECT batch_id, CAST(X'{bad_path.hex()}' AS TEXT), "
                "next_attempt_at, created_at, updated_at FROM documents "
                "WHERE batch_id = 'w-bad' ORDER BY id LIMIT 1"
            )

        async def settled() -> dict[str, Any]:
            while True:
                progress = (await client.get("/api/v1/batches/w-bad")).json()
                counts = progress["batch"]["counts"]
                if counts["done"] == 2 and counts["failed"] == 1:
                    return dict(progress)
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settled(), 30)
        failed = await client.get("/api/v1/batches/w-bad/documents", params={"status": "failed"})
        assert failed.status_code == 200, failed.text
        [document] = failed.json()["items"]
        assert document["error_code"] == "unreadable_row"
        assert document["source"] == f"{folder}/bad\\xff\\xfe.txt"
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["workers"] == "ok"
