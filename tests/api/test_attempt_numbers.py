"""A document retried after `retry` shows its attempts numbered on: 1, then 2."""

from __future__ import annotations

import uuid

from ledger.app import Ledger
from tests.api.conftest import Server, drain


async def test_attempts_are_numbered_across_a_retry(server: Server, ledger: Ledger) -> None:
    batch_id = f"num-{uuid.uuid4().hex[:8]}"
    base = f"/api/v1/batches/{batch_id}"
    async with server.client("acme") as client:
        await client.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        files = [("f", ("one.txt", b"one", "text/plain"))]
        assert (await client.post(f"{base}/files", files=files)).status_code == 201
        await drain(ledger, batch_id, fail=lambda source: "corrupt")
        retried = await client.post(f"{base}/retry", json={})
        assert retried.status_code == 200 and retried.json()["retried"] == 1
        await drain(ledger, batch_id)
        (document,) = (await client.get(f"{base}/documents")).json()["items"]
        detail = (await client.get(f"/api/v1/documents/{document['id']}")).json()

    assert detail["document"]["status"] == "done"
    assert [(a["attempt"], a["outcome"]) for a in detail["attempts"]] == [
        (1, "failed"),
        (2, "done"),
    ]
