"""Processor names and options are checked at create: a bad one is 422 and no batch exists."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.conftest import Server


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"processor": "nope:nope"}, "not allowed"),
        ({"processor": "sleep", "options": {"seconds": "x"}}, "seconds"),
        ({"processor": "sleep", "options": {"seconds": -1}}, "seconds"),
        ({"processor": "sleep", "options": {"secs": 1}}, "unknown sleep options"),
        ({"processor": "ingest", "options": {"chunk_size": 10}}, "chunk_size"),
    ],
)
async def test_bad_processor_or_options_is_422_and_creates_nothing(
    server: Server, body: dict[str, Any], reason: str
) -> None:
    batch_id = f"opts-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        refused = await client.post("/api/v1/batches", json={"id": batch_id, **body})
        assert refused.status_code == 422, refused.text
        assert reason in refused.json()["detail"]
        assert (await client.get(f"/api/v1/batches/{batch_id}")).status_code == 404
        valid = {"id": batch_id, "processor": "sleep", "options": {"seconds": 0}}
        fine = await client.post("/api/v1/batches", json=valid)
        assert fine.status_code == 201, fine.text
