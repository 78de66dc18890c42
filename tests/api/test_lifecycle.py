"""A batch's whole life over HTTP: create from server paths, upload, watch, fail, retry."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from ledger.app import Ledger
from tests.api.conftest import Server, drain
from tests.api.sse import SseEvent, read_events


def _bad(source: str) -> str | None:
    # By file name: an upload's random storage name (hex) can contain "bad" too.
    return "corrupt" if Path(source).name == "bad.txt" else None


async def test_full_lifecycle(server: Server, ledger: Ledger) -> None:
    folder = server.root / f"life-{uuid.uuid4().hex[:8]}"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "nested" / "b.txt").write_text("beta")
    (folder / "nested" / "bad.txt").write_text("broken")
    (folder / "skip.bin").write_bytes(b"\0")
    batch_id = f"life-{uuid.uuid4().hex[:8]}"

    async with server.client("acme") as client:
        created = await client.post(
            "/api/v1/batches",
            json={"id": batch_id, "processor": "noop", "paths": [str(folder)], "glob": "*.txt"},
        )
        assert created.status_code == 201, created.text
        assert created.json()["total"] == 3
        assert created.json()["owner"] == "acme"

        upload = await client.post(
            f"/api/v1/batches/{batch_id}/files",
            files=[
                ("files", ("one.txt", b"uploaded one", "text/plain")),
                ("files", ("two.txt", b"uploaded two", "text/plain")),
            ],
        )
        assert upload.status_code == 201, upload.text
        assert upload.json()["added"] == 2
        assert upload.json()["batch"]["total"] == 5

        docs = (await client.get(f"/api/v1/batches/{batch_id}/documents")).json()["items"]
        by_source = {d["source"]: d for d in docs}
        a = by_source[str(folder / "a.txt")]
        assert a["size"] == 5
        stat = (folder / "a.txt").stat()
        assert a["size"] == stat.st_size

        seen: list[SseEvent] = []

        async def watch() -> None:
            async for event in read_events(client, f"/api/v1/batches/{batch_id}/events"):
                seen.append(event)
                if event.event == "end":
                    return

        watcher = asyncio.create_task(watch())
        assert await drain(ledger, batch_id, fail=_bad) == 5
        await asyncio.wait_for(watcher, 20)

        kinds = [e.event for e in seen]
        assert kinds.count("document_done") == 4
        assert kinds.count("document_failed") == 1
        assert kinds[-1] == "end"
        assert "batch_completed" in kinds
        assert seen[-2].event == "progress"
        assert seen[-2].data["batch"]["complete"] is True
        ids = [int(e.id) for e in seen if e.id is not None]
        assert ids == sorted(ids)
        assert len(ids) == len(set(ids))
        assert all(e.id is None for e in seen if e.event in ("progress", "end"))

        progress = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        assert progress["percent"] == 100.0
        assert progress["batch"]["counts"]["done"] == 4
        assert progress["batch"]["counts"]["failed"] == 1
        assert progress["eta_seconds"] == 0.0

        failures = (await client.get(f"/api/v1/batches/{batch_id}/failures")).json()
        assert failures["total"] == 1
        assert failures["groups"][0]["code"] == "corrupt"
        assert "bad.txt" in failures["groups"][0]["example_message"]

        failed = await client.get(
            f"/api/v1/batches/{batch_id}/documents", params={"status": "failed"}
        )
        (failed_doc,) = failed.json()["items"]
        retry = await client.post(f"/api/v1/batches/{batch_id}/retry", json={"code": "other"})
        assert retry.json()["retried"] == 0
        retry = await client.post(f"/api/v1/batches/{batch_id}/retry", json={"code": "corrupt"})
        assert retry.status_code == 200, retry.text
        assert retry.json()["retried"] == 1
        assert retry.json()["batch"]["counts"]["pending"] == 1

        assert await drain(ledger, batch_id) == 1
        detail = (await client.get(f"/api/v1/documents/{failed_doc['id']}")).json()
        assert detail["document"]["status"] == "done"
        assert [a["outcome"] for a in detail["attempts"]] == ["failed", "done"]
        final = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        assert final["batch"]["counts"]["done"] == 5


async def test_pause_resume_cancel(server: Server, ledger: Ledger) -> None:
    batch_id = f"ctl-{uuid.uuid4().hex[:8]}"
    async with server.client("acme") as client:
        assert (await client.post("/api/v1/batches", json={"id": batch_id})).status_code == 201
        await client.post(
            f"/api/v1/batches/{batch_id}/files", files=[("f", ("x.txt", b"x", "text/plain"))]
        )
        paused = await client.post(f"/api/v1/batches/{batch_id}/pause", json={"reason": "lunch"})
        assert paused.json()["state"] == "paused"
        assert paused.json()["pause_reason"] == "lunch"
        assert await drain(ledger, batch_id) == 0  # paused: nothing is claimed
        progress = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        assert progress["batch"]["pause_reason"] == "lunch"
        resumed = await client.post(f"/api/v1/batches/{batch_id}/resume")
        assert resumed.json()["state"] == "active"
        cancelled = await client.post(f"/api/v1/batches/{batch_id}/cancel")
        assert cancelled.json()["state"] == "cancelled"
        assert cancelled.json()["counts"]["cancelled"] == 1
        again = await client.post(f"/api/v1/batches/{batch_id}/resume")
        assert again.status_code == 409
        assert again.headers["content-type"] == "application/problem+json"
        late = await client.post(
            f"/api/v1/batches/{batch_id}/files", files=[("f", ("y.txt", b"y", "text/plain"))]
        )
        assert late.status_code == 409


async def test_list_batches_pages_and_filters(server: Server) -> None:
    async with server.client("globex") as client:
        made = []
        for _ in range(5):
            r = await client.post("/api/v1/batches", json={"name": "paging"})
            assert r.status_code == 201
            made.append(r.json()["id"])
        await client.post(f"/api/v1/batches/{made[0]}/pause")
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/batches", params=params)).json()
            seen.extend(b["id"] for b in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert set(made) <= set(seen)
        assert len(seen) == len(set(seen))
        paused = (await client.get("/api/v1/batches", params={"state": "paused"})).json()
        assert made[0] in [b["id"] for b in paused["items"]]
        assert all(b["state"] == "paused" for b in paused["items"])
        bad = await client.get("/api/v1/batches", params={"cursor": "!!!"})
        assert bad.status_code == 400
