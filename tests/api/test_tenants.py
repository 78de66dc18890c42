"""API keys and tenants: every endpoint scoped; another tenant's ids answer like missing ones."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from ledger.app import Ledger
from tests.api.conftest import Server, drain


async def test_concurrent_identical_creates_make_one_batch(server: Server) -> None:
    batch_id = f"idem-{uuid.uuid4().hex[:8]}"
    folder = server.root / batch_id
    folder.mkdir()
    for i in range(50):
        (folder / f"{i}.txt").write_text(str(i))
    body = {"id": batch_id, "name": "same", "processor": "noop", "paths": [str(folder)]}
    async with server.client("acme") as client:
        answers = await asyncio.gather(
            *(client.post("/api/v1/batches", json=body) for _ in range(20))
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * 19 + [201], [r.text for r in answers if r.status_code >= 300]
        assert {r.json()["total"] for r in answers} == {50}
        listed = (await client.get("/api/v1/batches", params={"limit": 500})).json()["items"]
        assert [b["id"] for b in listed].count(batch_id) == 1

        changed = await client.post("/api/v1/batches", json={**body, "name": "other"})
        assert changed.status_code == 409
        assert "different request" in changed.json()["detail"]
        fewer = await client.post(
            "/api/v1/batches", json={**body, "paths": [str(folder / "1.txt")]}
        )
        assert fewer.status_code == 409
    async with server.client("globex") as other:
        taken = await other.post("/api/v1/batches", json=body)
        assert taken.status_code == 409  # ids are global; the answer says nothing more


async def test_every_endpoint_hides_other_tenants(server: Server, ledger: Ledger) -> None:
    batch_id = f"iso-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as acme:
        await acme.post("/api/v1/batches", json={"id": batch_id, "processor": "noop"})
        await acme.post(
            f"/api/v1/batches/{batch_id}/files", files=[("f", ("a.txt", b"a", "text/plain"))]
        )
        await drain(ledger, batch_id, fail=lambda s: "corrupt")
        doc_id = (await acme.get(f"/api/v1/batches/{batch_id}/documents")).json()["items"][0]["id"]
        for path in (f"/api/v1/batches/{batch_id}", f"/api/v1/documents/{doc_id}"):
            assert (await acme.get(path)).status_code == 200

    async with server.client("globex") as globex:
        probes: list[tuple[str, str, dict[str, object]]] = [
            ("GET", f"/api/v1/batches/{batch_id}", {}),
            ("GET", f"/api/v1/batches/{batch_id}/documents", {}),
            ("GET", f"/api/v1/batches/{batch_id}/failures", {}),
            ("GET", f"/api/v1/batches/{batch_id}/events", {}),
            ("GET", f"/api/v1/documents/{doc_id}", {}),
            ("POST", f"/api/v1/batches/{batch_id}/pause", {}),
            ("POST", f"/api/v1/batches/{batch_id}/resume", {}),
            ("POST", f"/api/v1/batches/{batch_id}/retry", {"json": {}}),
            ("POST", f"/api/v1/batches/{batch_id}/cancel", {}),
            (
                "POST",
                f"/api/v1/batches/{batch_id}/files",
                {"files": [("f", ("b.txt", b"b", "text/plain"))]},
            ),
        ]
        for method, path, kwargs in probes:
            theirs = await globex.request(method, path, **kwargs)  # type: ignore[arg-type]
            missing = await globex.request(
                method,
                path.replace(batch_id, "no-such-batch").replace(str(doc_id), "999999999"),
                **kwargs,  # type: ignore[arg-type]
            )
            assert theirs.status_code == 404, (method, path, theirs.text)
            assert missing.status_code == 404
            # Exactly like a missing one, apart from the id echoed back.
            assert theirs.json()["title"] == missing.json()["title"]
        listed = (await globex.get("/api/v1/batches", params={"limit": 500})).json()["items"]
        assert batch_id not in [b["id"] for b in listed]
        assert all(b["owner"] == "globex" for b in listed)
        metrics = (await globex.get("/metrics")).text
        assert batch_id not in metrics

    async with server.client("acme") as acme:
        # Nothing the other tenant tried changed the batch.
        batch = (await acme.get(f"/api/v1/batches/{batch_id}")).json()["batch"]
        assert batch["state"] == "active"
        assert batch["total"] == 1
        assert batch["counts"]["failed"] == 1


async def test_keys_are_required_and_revocation_is_immediate(
    server: Server, ledger: Ledger
) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as anonymous:
        r = await anonymous.get("/api/v1/batches")
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.headers["content-type"] == "application/problem+json"
        assert "Authorization: Bearer" in r.json()["detail"]
        bad = await anonymous.get(
            "/api/v1/batches", headers={"Authorization": "Bearer ldg_0000000000000000_" + "x" * 43}
        )
        assert bad.status_code == 401
        assert (await anonymous.get("/health")).status_code == 200  # probes need no key
    async with server.client("revoked") as client:
        assert (await client.get("/api/v1/batches")).status_code == 200
        await ledger.keys.revoke(server.key_ids["revoked"])
        assert (await client.get("/api/v1/batches")).status_code == 401
