"""DELETE /api/v1/batches/{id} on the real server: 204 and everything gone, 409 while
documents run unless force, 404 for another tenant (deleting nothing) and the second time."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.queue import deletion
from ledger.settings import Settings
from tests.api.conftest import REPO, Server, drain
from tests.conftest import sql
from tests.helpers.server import free_port, spawn, stop, uvicorn_args

TABLES = ("documents", "attempts", "events", "chunks", "uploads", "batch_requests")


def rows_of(server: Server, batch_id: str) -> dict[str, int]:
    url = server.db_url.replace("+aiosqlite", "")
    counts = {
        t: sql(url, f"SELECT count(*) FROM {t} WHERE batch_id = :b", b=batch_id)[0][0]
        for t in TABLES
    }
    counts["batches"] = sql(url, "SELECT count(*) FROM batches WHERE id = :b", b=batch_id)[0][0]
    return counts


async def upload_batch(server: Server, tenant: str, batch_id: str, n: int) -> list[Path]:
    async with server.client(tenant) as client:
        made = await client.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        assert made.status_code == 201, made.text
        files = [("files", (f"f{i}.txt", f"text {i}".encode(), "text/plain")) for i in range(n)]
        stored = await client.post(f"/api/v1/batches/{batch_id}/files", files=files)
        assert stored.status_code == 201, stored.text
        return [Path(f["source"]) for f in stored.json()["files"]]


async def test_delete_removes_rows_and_stored_files(server: Server, ledger: Ledger) -> None:
    gone = await upload_batch(server, "acme", "del-gone", 4)
    kept = await upload_batch(server, "acme", "del-kept", 2)
    await drain(ledger, "del-gone")
    before = rows_of(server, "del-gone")
    assert before["documents"] == 4 and before["attempts"] == 4 and before["batch_requests"] == 1
    kept_before = rows_of(server, "del-kept")
    assert all(p.is_file() for p in gone)

    async with server.client("acme") as client:
        answer = await client.delete("/api/v1/batches/del-gone")
        assert answer.status_code == 204, answer.text
        assert answer.content == b""
        assert (await client.get("/api/v1/batches/del-gone")).status_code == 404
        again = await client.delete("/api/v1/batches/del-gone")
        assert again.status_code == 404
        listed = (await client.get("/api/v1/batches", params={"limit": 500})).json()
        assert "del-gone" not in [b["id"] for b in listed["items"]]

    assert rows_of(server, "del-gone") == dict.fromkeys([*TABLES, "batches"], 0)
    assert rows_of(server, "del-kept") == kept_before
    assert not any(p.exists() for p in gone) and not gone[0].parent.exists()
    assert all(p.is_file() for p in kept)


async def test_another_tenant_gets_404_and_nothing_is_deleted(
    server: Server, ledger: Ledger
) -> None:
    stored = await upload_batch(server, "acme", "del-theirs", 2)
    before = rows_of(server, "del-theirs")
    async with server.client("globex") as client:
        answer = await client.delete("/api/v1/batches/del-theirs", params={"force": "true"})
        assert answer.status_code == 404
    assert rows_of(server, "del-theirs") == before
    assert all(p.is_file() for p in stored)
    async with server.client() as anonymous:
        assert (await anonymous.delete("/api/v1/batches/del-theirs")).status_code == 401
    assert rows_of(server, "del-theirs") == before


async def test_running_documents_are_409_unless_forced(server: Server, ledger: Ledger) -> None:
    await upload_batch(server, "acme", "del-busy", 3)
    worker = await ledger.workers.register(concurrency=1)
    assert len(await ledger.queue.claim(worker, 1, batch_ids=["del-busy"])) == 1
    async with server.client("acme") as client:
        refused = await client.delete("/api/v1/batches/del-busy")
        assert refused.status_code == 409, refused.text
        assert "running" in refused.json()["detail"]
        assert rows_of(server, "del-busy")["documents"] == 3
        forced = await client.delete("/api/v1/batches/del-busy", params={"force": "true"})
        assert forced.status_code == 204, forced.text
    assert rows_of(server, "del-busy") == dict.fromkeys([*TABLES, "batches"], 0)


async def test_on_each_backend_a_starting_server_finishes_an_interrupted_deletion_and_deletes(
    tmp_path: Path, db_url: str, sync_url: str
) -> None:
    """The same server over SQLite and over PostgreSQL: it finishes a deletion a killed
    process left half-done, then answers DELETE with 404, 409, 204 as above."""
    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, database_url=db_url, delete_step_rows=5)
    keys: dict[str, str] = {}
    async with await Ledger.open(settings) as led:
        for tenant in ("acme", "globex"):
            keys[tenant] = (await led.keys.create(tenant))[1]
        sources = [SourceSpec(f"/src/{i}") for i in range(40)]
        for batch_id in ("half", "whole", "busy"):
            await led.queue.submit(BatchSpec(id=batch_id, processor="noop", owner="acme"), sources)
        worker = await led.workers.register(concurrency=1)
        assert len(await led.queue.claim(worker, 1, batch_ids=["busy"])) == 1

        # What a server killed during a deletion leaves: the batch marked, some rows gone.
        async def interrupted(conn: AsyncConnection, now: datetime) -> None:
            await deletion.start(conn, "half", owner="acme", force=False, now=now)
            ids, _ = await deletion.documents_to_remove(conn, "half", 5, settings.storage)
            await deletion.delete_documents(conn, "half", ids)

        await led.runner.run(interrupted)
    documents = "SELECT count(*) FROM documents WHERE batch_id = :b"
    assert sql(sync_url, documents, b="half") == [(35,)]

    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LEDGER_HOME": str(home),
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_AUTH": "on",
        "LEDGER_DELETE_STEP_ROWS": "5",
    }
    log = tmp_path / "server.log"
    proc = spawn(uvicorn_args(port), env=env, log=log, cwd=tmp_path, port=port)
    base = f"http://127.0.0.1:{port}/api/v1/batches"
    try:
        deadline = time.monotonic() + 60
        while sql(sync_url, "SELECT count(*) FROM batches WHERE id = 'half'") != [(0,)]:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        async with (
            httpx.AsyncClient(headers={"Authorization": f"Bearer {keys['acme']}"}) as acme,
            httpx.AsyncClient(headers={"Authorization": f"Bearer {keys['globex']}"}) as globex,
        ):
            assert (
                await globex.delete(f"{base}/whole", params={"force": "true"})
            ).status_code == 404
            assert sql(sync_url, documents, b="whole") == [(40,)]
            assert (await acme.delete(f"{base}/whole")).status_code == 204
            assert (await acme.delete(f"{base}/whole")).status_code == 404
            assert (await acme.delete(f"{base}/busy")).status_code == 409
            assert sql(sync_url, documents, b="busy") == [(40,)]
            assert (await acme.delete(f"{base}/busy?force=true")).status_code == 204
    finally:
        stop(proc, log)
    assert sql(sync_url, "SELECT count(*) FROM documents") == [(0,)]
    assert sql(sync_url, "SELECT count(*) FROM batches") == [(0,)]
    for table in ("attempts", "events", "batch_requests"):
        assert sql(sync_url, f"SELECT count(*) FROM {table}") == [(0,)], table


async def test_a_followed_batch_that_is_deleted_ends_its_event_stream(
    server: Server, ledger: Ledger
) -> None:
    await upload_batch(server, "acme", "del-followed", 2)
    events = "/api/v1/batches/del-followed/events"
    async with (
        server.client("acme") as watcher,
        server.client("acme") as deleter,
        watcher.stream("GET", events) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.aiter_lines()
        async for line in lines:
            if line.startswith("event: progress"):
                break  # the stream is live
        answer = await deleter.delete("/api/v1/batches/del-followed")
        assert answer.status_code == 204
        seen = []
        async for line in lines:
            seen.append(line)
            if line.startswith("data:") and seen[-2:-1] == ["event: end"]:
                break
    assert seen[-2:] == ["event: end", 'data: {"reason": "deleted"}'], seen
