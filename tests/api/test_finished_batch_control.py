"""Pause and cancel are refused (409) on a batch with nothing left to do."""

from __future__ import annotations

import uuid

from ledger.app import Ledger
from tests.api.conftest import Server, drain


async def test_complete_batch_refuses_pause_and_cancel(server: Server, ledger: Ledger) -> None:
    batch_id = f"fin-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        assert (await client.post("/api/v1/batches", json={"id": batch_id})).status_code == 201
        await client.post(
            f"/api/v1/batches/{batch_id}/files", files=[("f", ("x.txt", b"x", "text/plain"))]
        )
        assert await drain(ledger, batch_id) == 1
        for action in ("pause", "cancel"):
            refused = await client.post(f"/api/v1/batches/{batch_id}/{action}")
            assert refused.status_code == 409, refused.text
            assert "is complete" in refused.text
        state = (await client.get(f"/api/v1/batches/{batch_id}")).json()["batch"]["state"]
        assert state == "active"
