"""One answer shape for a batch, and one timestamp format (RFC 3339, UTC, `Z`) everywhere."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

from ledger.app import Ledger
from tests.api.conftest import Server, drain
from tests.api.sse import read_events

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
TIMESTAMP_KEY = re.compile(r".*(_at|minute|until|since)$")


def _timestamps(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _timestamps(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _timestamps(v, key)
    elif TIMESTAMP_KEY.fullmatch(key) and value is not None:
        yield key, value


async def test_create_read_and_change_answer_alike(server: Server) -> None:
    batch_id = f"shape-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        created = await client.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        assert created.status_code == 201, created.text
        read = await client.get(f"/api/v1/batches/{batch_id}")
        assert created.json() == read.json()
        body = read.json()
        assert body["id"] == body["batch"]["id"] == batch_id
        assert {k: body[k] for k in body["batch"]} == body["batch"]
        assert {"percent", "rate_per_second", "eta_seconds", "last_finished_at"} <= set(body)
        again = await client.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        assert again.status_code == 200 and set(again.json()) == set(body)


async def test_every_timestamp_is_rfc3339_utc_with_z(server: Server, ledger: Ledger) -> None:
    batch_id = f"time-{uuid.uuid4().hex[:8]}"
    base = f"/api/v1/batches/{batch_id}"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        files = [("f", (f"t{i}.txt", b"text", "text/plain")) for i in range(2)]
        assert (await client.post(f"{base}/files", files=files)).status_code == 201
        await drain(ledger, batch_id)
        documents = (await client.get(f"{base}/documents")).json()
        answers = [
            (await client.get(base)).json(),
            (await client.get("/api/v1/batches")).json(),
            documents,
            (await client.get(f"/api/v1/documents/{documents['items'][0]['id']}")).json(),
            (await client.get(f"{base}/throughput")).json(),
        ]
        streamed = [
            e.data async for e in read_events(client, f"{base}/events") if isinstance(e.data, dict)
        ]
    seen = [pair for answer in answers + streamed for pair in _timestamps(answer)]
    keys = {key for key, _ in seen}
    assert {"created_at", "started_at", "finished_at", "completed_at", "minute"} <= keys
    wrong = [(key, value) for key, value in seen if not RFC3339_UTC.fullmatch(str(value))]
    assert wrong == []
