"""GET /api/v1/maintenance through the real server: operators only, and what the server's
own maintenance loop and the CLI's runs did."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import Server, start_server, stop_server


async def _runs(client: httpx.AsyncClient, predicate: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get("/api/v1/maintenance")
        assert response.status_code == 200, response.text
        body = response.json()
        if predicate(body["runs"]):
            return list(body["runs"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; last answer {body!r}")


async def test_operators_see_the_servers_maintenance_runs(server: Server) -> None:
    async with server.client("ops") as ops:
        # A run being written has no counts yet: wait for a finished one.
        runs = await _runs(ops, lambda runs: any(r["finished_at"] for r in runs))
        newest = next(r for r in runs if r["finished_at"])
        assert newest["runner"].startswith("serve ")
        assert {"leases_rescued", "uploads_expired", "upload_files_removed"} <= set(
            newest["counts"]
        )
        limited = await ops.get("/api/v1/maintenance", params={"limit": 1})
        assert limited.status_code == 200 and len(limited.json()["runs"]) == 1
        assert (await ops.get("/api/v1/maintenance", params={"limit": 0})).status_code == 422
    async with server.client("acme") as tenant:
        assert (await tenant.get("/api/v1/maintenance")).status_code == 403
    async with server.client() as anonymous:
        assert (await anonymous.get("/api/v1/maintenance")).status_code == 401


def test_keyless_loopback_sees_them_while_no_key_exists(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {"LEDGER_MAINTENANCE_INTERVAL_SECONDS": "0.2"})
    try:
        deadline = time.monotonic() + 60
        runs: list[dict[str, Any]] = []
        while len(runs) < 2 and time.monotonic() < deadline:
            response = httpx.get(f"{srv.base_url}/api/v1/maintenance", timeout=30)
            assert response.status_code == 200, response.text
            runs = response.json()["runs"]
            time.sleep(0.1)
        # A pass at start and one every interval.
        assert len(runs) >= 2, runs
        assert all(r["runner"].startswith("serve ") for r in runs)
        assert runs[0]["id"] > runs[1]["id"]
    finally:
        stop_server(srv)
