"""SSE: a client that reconnects with Last-Event-ID misses nothing and sees nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from ledger.app import Ledger
from tests.api.conftest import Server, drain
from tests.api.sse import SseEvent, read_events


async def _upload(client: httpx.AsyncClient, batch_id: str, count: int) -> None:
    files = [("f", (f"doc{i}.txt", f"text {i}".encode(), "text/plain")) for i in range(count)]
    r = await client.post(f"/api/v1/batches/{batch_id}/files", files=files)
    assert r.status_code == 201, r.text


async def _collect(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], stop: int | None
) -> list[SseEvent]:
    """Events with ids until ``stop`` of them were read (None: until the stream ends)."""
    got: list[SseEvent] = []
    async for event in read_events(client, url, headers):
        if event.id is not None:
            got.append(event)
            if stop is not None and len(got) >= stop:
                break
    return got


async def test_reconnect_with_last_event_id_has_no_gap_and_no_duplicate(
    server: Server, ledger: Ledger
) -> None:
    batch_id = f"sse-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/batches/{batch_id}/events"
    async with server.client("acme") as client:
        assert (await client.post("/api/v1/batches", json={"id": batch_id})).status_code == 201
        await _upload(client, batch_id, 40)
        await drain(ledger, batch_id, fail=lambda s: None, limit=15)

        first = await _collect(client, url, {}, stop=10)  # disconnects mid-stream
        await drain(ledger, batch_id, limit=10)
        second = await _collect(client, url, {"Last-Event-ID": first[-1].id or ""}, stop=12)
        await drain(ledger, batch_id)
        third = await asyncio.wait_for(
            _collect(client, url, {"Last-Event-ID": second[-1].id or ""}, stop=None), 20
        )

    received = [int(e.id or 0) for e in first + second + third]
    expected = [e.id for e in await ledger.reads.events(batch_id, owner="acme", limit=10_000)]
    assert received == expected  # every event once, in order, across three connections
    assert sum(e.event == "document_done" for e in first + second + third) == 40


async def test_after_query_and_bad_last_event_id(server: Server, ledger: Ledger) -> None:
    batch_id = f"sse-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/batches/{batch_id}/events"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id})
        await _upload(client, batch_id, 3)
        await drain(ledger, batch_id)
        events = await ledger.reads.events(batch_id, owner="acme")
        tail = await _collect(client, f"{url}?after={events[1].id}", {}, stop=None)
        assert [int(e.id or 0) for e in tail] == [e.id for e in events[2:]]
        bad = await client.get(url, headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        missing = await client.get("/api/v1/batches/nope/events")
        assert missing.status_code == 404


async def test_document_events_name_the_document_its_status_and_error(
    server: Server, ledger: Ledger
) -> None:
    batch_id = f"sse-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/batches/{batch_id}/events"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id})
        await _upload(client, batch_id, 2)
        listed = (await client.get(f"/api/v1/batches/{batch_id}/documents")).json()["items"]
        sources = {d["id"]: d["source"] for d in listed}
        failing = listed[1]["source"]
        await drain(ledger, batch_id, fail=lambda s: "bad_input" if s == failing else None)
        got = await asyncio.wait_for(_collect(client, url, {}, stop=None), 20)

    per_document = {e.event: e.data["data"] for e in got if e.event.startswith("document_")}
    assert set(per_document) == {"document_done", "document_failed"}
    done, failed = per_document["document_done"], per_document["document_failed"]
    assert done == {
        "document_id": listed[0]["id"],
        "source": sources[listed[0]["id"]],
        "status": "done",
        "error_code": None,
    }
    assert failed["document_id"] == listed[1]["id"] and failed["source"] == failing
    assert failed["status"] == "failed" and failed["error_code"] == "bad_input"
    assert failed["error_message"].startswith("bad_input")
