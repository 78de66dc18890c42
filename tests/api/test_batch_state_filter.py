"""GET /batches?state=: every status the CLI accepts, and active for pending or running."""

from __future__ import annotations

import uuid

import httpx

from ledger.app import Ledger
from tests.api.conftest import Server, drain


async def _batch_with_file(client: httpx.AsyncClient, label: str) -> str:
    batch_id = f"sf-{label}-{uuid.uuid4().hex[:6]}"
    assert (await client.post("/api/v1/batches", json={"id": batch_id})).status_code == 201
    files = [("f", (f"{label}.txt", label.encode(), "text/plain"))]
    added = await client.post(f"/api/v1/batches/{batch_id}/files", files=files)
    assert added.status_code in (200, 201), added.text
    return batch_id


async def test_every_status_filters_on_the_server(server: Server, ledger: Ledger) -> None:
    async with server.client("acme") as client:
        made = {
            label: await _batch_with_file(client, label)
            for label in ("pending", "running", "paused", "complete", "cancelled")
        }
        assert await drain(ledger, made["complete"]) == 1
        worker = await ledger.workers.register(concurrency=1)
        assert len(await ledger.queue.claim(worker, 1, batch_ids=[made["running"]])) == 1
        assert (await client.post(f"/api/v1/batches/{made['paused']}/pause")).status_code == 200
        assert (await client.post(f"/api/v1/batches/{made['cancelled']}/cancel")).status_code == 200

        async def listed(state: str) -> set[str]:
            r = await client.get("/api/v1/batches", params={"state": state, "limit": 200})
            assert r.status_code == 200, r.text
            return {b["id"] for b in r.json()["items"]} & set(made.values())

        for status in ("pending", "running", "paused", "complete", "cancelled"):
            assert await listed(status) == {made[status]}, status
        # A complete batch keeps its stored state "active" but is finished: not listed as active.
        assert await listed("active") == {made["pending"], made["running"]}

        unknown = await client.get("/api/v1/batches", params={"state": "finished"})
        assert unknown.status_code == 422, unknown.text
        assert unknown.headers["content-type"] == "application/problem+json"
        for choice in ("active", "pending", "running", "paused", "complete", "cancelled"):
            assert choice in unknown.json()["detail"], unknown.text
