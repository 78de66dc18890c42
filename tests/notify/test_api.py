"""The webhook endpoints on a real uvicorn server: per tenant, secret shown once, hosts
allowed by the operator only, and deliveries sent by the server and visible per webhook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from tests.api.conftest import Server, start_server, stop_server
from tests.notify.receiver import Receiver
from tests.notify.support import submit, work


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("webhooks"),
        {
            "LEDGER_AUTH": "on",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "LEDGER_WEBHOOK_SCAN_SECONDS": "0.1",
        },
        tenants=("acme", "globex"),
    )
    yield srv
    stop_server(srv)


async def _complete(server: Server, batch_id: str, owner: str) -> None:
    async with await Ledger.open(server.settings()) as ledger:
        await submit(ledger, batch_id, 2, owner=owner)
        await work(ledger, batch_id)


async def test_a_tenant_creates_lists_reads_and_removes_only_its_own_webhooks(
    hook_server: Server, receiver: Receiver
) -> None:
    async with hook_server.client("acme") as acme, hook_server.client("globex") as globex:
        made = await acme.post(
            "/api/v1/webhooks",
            json={"url": receiver.url, "events": ["batch.completed"], "failure_threshold": 0.2},
        )
        assert made.status_code == 201, made.text
        created = made.json()
        assert created["secret"].startswith("whsec_")
        assert created["events"] == ["batch.completed"] and created["failure_threshold"] == 0.2
        hook_id = created["id"]
        listed = (await acme.get("/api/v1/webhooks")).json()["items"]
        assert [h["id"] for h in listed] == [hook_id]
        assert "secret" not in listed[0]
        assert "secret" not in (await acme.get(f"/api/v1/webhooks/{hook_id}")).json()
        assert (await globex.get("/api/v1/webhooks")).json()["items"] == []
        for path in (f"/api/v1/webhooks/{hook_id}", f"/api/v1/webhooks/{hook_id}/deliveries"):
            assert (await globex.get(path)).status_code == 404
        assert (await globex.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 404
        assert (await acme.delete(f"/api/v1/webhooks/{hook_id}")).status_code == 204
        assert (await acme.get(f"/api/v1/webhooks/{hook_id}")).status_code == 404


async def test_a_host_the_operator_did_not_allow_is_422_and_nothing_is_sent(
    hook_server: Server, receiver: Receiver
) -> None:
    async with hook_server.client("acme") as acme:
        for url in ("http://example.com/hook", "file:///etc/passwd", "http://localhost:1/x"):
            answer = await acme.post(
                "/api/v1/webhooks", json={"url": url, "events": ["batch.completed"]}
            )
            assert answer.status_code == 422, (url, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
        unknown = await acme.post(
            "/api/v1/webhooks", json={"url": receiver.url, "events": ["batch.exploded"]}
        )
        assert unknown.status_code == 400
        assert (await acme.get("/api/v1/webhooks")).json()["items"] == []
    await _complete(hook_server, "unheard", "acme")
    await asyncio.sleep(1)  # ten scans of the server's sender: nobody is subscribed
    assert receiver.received == []


async def test_the_server_delivers_a_tenants_events_and_shows_each_delivery(
    hook_server: Server, receiver: Receiver
) -> None:
    async with hook_server.client("acme") as acme:
        made = await acme.post(
            "/api/v1/webhooks", json={"url": receiver.url, "events": ["batch.completed"]}
        )
        hook_id, secret = made.json()["id"], made.json()["secret"]
        await _complete(hook_server, "acme-1", "acme")
        await _complete(hook_server, "globex-1", "globex")
        (got,) = receiver.wait_for(1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = (await acme.get(f"/api/v1/webhooks/{hook_id}/deliveries")).json()["items"]
            if items and items[0]["status"] == "delivered":
                break
            await asyncio.sleep(0.1)
        (delivery,) = items
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
        assert delivery["event_id"] == got.id and delivery["batch_id"] == "acme-1"
        assert delivery["last_status_code"] == 200
        await acme.delete(f"/api/v1/webhooks/{hook_id}")
    (body,) = receiver.verified(secret)
    assert body["type"] == "batch.completed" and body["data"]["batch_id"] == "acme-1"
    assert len(receiver.received) == 1  # globex's batch is not acme's business


def test_the_secret_is_never_in_the_server_log(hook_server: Server) -> None:
    text = Path(hook_server.log).read_text(errors="replace")
    assert "whsec_" not in text
