"""PATCH /batches/{id}: a submitted batch's name, priority and max_attempts can change."""

from __future__ import annotations

import uuid

from tests.api.conftest import Server


async def test_patch_changes_settings_for_its_tenant_only(server: Server) -> None:
    batch_id = f"patch-{uuid.uuid4().hex[:8]}"
    url = f"/api/v1/batches/{batch_id}"
    async with server.client("acme") as acme, server.client("globex") as globex:
        created = await acme.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        assert created.status_code == 201, created.text

        r = await acme.patch(url, json={"priority": 9, "max_attempts": 5, "name": "first pass"})
        assert r.status_code == 200, r.text
        assert r.json() == (await acme.get(url)).json()
        batch = r.json()["batch"]
        assert (batch["priority"], batch["max_attempts"], batch["name"]) == (9, 5, "first pass")

        kept = (await acme.patch(url, json={"priority": -3})).json()["batch"]
        assert (kept["priority"], kept["max_attempts"], kept["name"]) == (-3, 5, "first pass")

        assert (await globex.patch(url, json={"priority": 1})).status_code == 404
        assert (await acme.patch(url + "x", json={"priority": 1})).status_code == 404
        for bad in (
            {"priority": 10**9},
            {"max_attempts": 0},
            {"priority": "high"},
            {"name": ""},
            {"processor": "sleep"},
        ):
            refused = await acme.patch(url, json=bad)
            assert refused.status_code == 422, (bad, refused.text)
        assert (await acme.get(url)).json()["batch"]["priority"] == -3
