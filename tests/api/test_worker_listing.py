"""GET /api/v1/workers and the worker gauges of /metrics, against a real server whose
in-process worker registers itself; a batch no live worker can run says it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger.app import Ledger
from tests.api.conftest import Server, start_server, stop_server

# Callers may name 'gone' (the operator allows it), but its module exists nowhere: the
# server's worker leaves it out at start, and its batches wait instead of failing.
PROCESSORS = "gone=no_such_module_anywhere:process"


@pytest.fixture(scope="module")
def worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("listing"),
        {
            "LEDGER_AUTH": "on",
            "LEDGER_SERVE_WORKERS": "true",
            "LEDGER_POLL_SECONDS": "0.05",
            "LEDGER_PROCESSORS": PROCESSORS,
        },
        tenants=("acme",),
        operators=("ops",),
    )
    yield srv
    stop_server(srv)


async def _server_worker(client: httpx.AsyncClient) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        answer = await client.get("/api/v1/workers", params={"state": "alive"})
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        if items:
            return dict(items[0])
        assert time.monotonic() < deadline, "the in-process worker never registered"
        await asyncio.sleep(0.05)


async def test_workers_are_listed_for_the_operator_only(worker_server: Server) -> None:
    async with worker_server.client("ops") as ops, worker_server.client("acme") as acme:
        refused = await acme.get("/api/v1/workers")
        assert refused.status_code == 403
        assert "operator" in refused.text
        own = await _server_worker(ops)
        assert own["state"] == "alive"
        assert own["pid"] == worker_server.proc.pid
        assert {"noop", "sleep", "ingest"} <= set(own["processors"])
        assert "gone" not in own["processors"]
        assert set(own) >= {
            "id",
            "host",
            "concurrency",
            "in_flight",
            "finished",
            "started_at",
            "last_heartbeat_at",
        }

        # Two more workers, started after it: newest first, one stopped.
        async with await Ledger.open(worker_server.settings()) as ledger:
            first = await ledger.workers.register(concurrency=2, processors=["noop"])
            second = await ledger.workers.register(concurrency=3, processors=["noop"])
            await ledger.workers.stopped(second, finished=7)
        items = (await ops.get("/api/v1/workers")).json()["items"]
        assert [w["id"] for w in items][:3] == [second, first, own["id"]]
        assert (items[0]["state"], items[0]["finished"]) == ("stopped", 7)
        stopped = (await ops.get("/api/v1/workers", params={"state": "stopped"})).json()
        assert [w["id"] for w in stopped["items"]] == [second]

        page = (await ops.get("/api/v1/workers", params={"limit": 1})).json()
        assert [w["id"] for w in page["items"]] == [second] and page["next_cursor"]
        rest = await ops.get("/api/v1/workers", params={"limit": 5, "cursor": page["next_cursor"]})
        assert [w["id"] for w in rest.json()["items"]] == [first, own["id"]]
        assert rest.json()["next_cursor"] is None

        metrics = (await ops.get("/metrics")).text
        assert 'ledger_workers{state="alive"} 2.0' in metrics
        assert 'ledger_workers{state="stopped"} 1.0' in metrics
        assert 'ledger_workers{state="lost"} 0.0' in metrics
        assert "ledger_documents_in_flight 0.0" in metrics


async def test_a_batch_no_worker_can_run_waits_visibly(worker_server: Server) -> None:
    folder = worker_server.root / "waiting"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"document {i}")
    async with worker_server.client("acme") as acme, worker_server.client("ops") as ops:
        await _server_worker(ops)
        body = {"id": "waits", "processor": "gone", "paths": [str(folder)]}
        created = await acme.post("/api/v1/batches", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["waiting_for_processor"] == "gone"
        # A worker runs all the while: the batch still waits, and nothing fails.
        await asyncio.sleep(1)
        answer = (await acme.get("/api/v1/batches/waits")).json()
        assert answer["waiting_for_processor"] == "gone"
        assert answer["note"] == "waiting: no worker can run processor 'gone'"
        assert answer["counts"]["pending"] == 3 and answer["counts"]["failed"] == 0
        # A batch the server's worker can run does not wait, and runs.
        body = {"id": "runs", "processor": "noop", "paths": [str(folder)]}
        created = await acme.post("/api/v1/batches", json=body)
        assert created.json()["waiting_for_processor"] is None
        deadline = time.monotonic() + 30
        while not (await acme.get("/api/v1/batches/runs")).json()["complete"]:
            assert time.monotonic() < deadline, "the runnable batch never finished"
            await asyncio.sleep(0.05)
    assert "left out" in worker_server.log.read_text()


@pytest.fixture(scope="module")
def keyless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("keyless"), {"LEDGER_AUTH": "auto"})
    yield srv
    stop_server(srv)


async def test_keyless_loopback_may_list_workers_while_no_key_exists(
    keyless_server: Server,
) -> None:
    async with keyless_server.client() as anonymous:
        answer = await anonymous.get("/api/v1/workers")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"items": [], "next_cursor": None}
