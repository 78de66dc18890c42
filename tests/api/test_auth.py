"""API keys in the default mode (LEDGER_AUTH=auto) on a loopback server.

Loopback is not a boundary on a shared machine: once one key exists, every request needs a
valid key; a key that is sent is always checked; a revoked key's open streams end; each
key holds a bounded number of streams; /metrics is for operator keys.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar.exceptions import TooManyRequestsException

from ledger.api.streams import StreamQuota
from tests.api.conftest import REPO, Server, start_server, stop_server
from tests.api.sse import SseEvent, read_events

BOGUS = "ldg_0123456789abcdef_" + "A" * 43


@pytest.fixture(scope="module")
def auto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default auth mode, loopback, no key yet; streams limited to 2 per key."""
    srv = start_server(
        tmp_path_factory.mktemp("auto"),
        {
            "LEDGER_AUTH": "auto",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGER_MAX_SSE_STREAMS_PER_KEY": "2",
        },
    )
    yield srv
    stop_server(srv)


def ledger_cli(server: Server, *args: str) -> dict[str, object]:
    """The operator's CLI on the server's database (a real subprocess)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        {
            "LEDGER_HOME": str(server.home),
            "LEDGER_DATABASE_URL": server.db_url,
            "PYTHONPATH": str(REPO),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ledger", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if "--json" in args else {}


async def wait_for_status(client: httpx.AsyncClient, path: str, status: int) -> None:
    deadline = time.monotonic() + 30
    while (answer := await client.get(path)).status_code != status:
        assert time.monotonic() < deadline, f"{path}: still {answer.status_code}"
        await asyncio.sleep(0.1)


async def open_stream(
    client: httpx.AsyncClient, url: str
) -> tuple[asyncio.Task[None], list[SseEvent]]:
    """A stream read in the background, returned once the server has answered on it."""
    received: list[SseEvent] = []

    async def read() -> None:
        async for event in read_events(client, url):
            received.append(event)

    task = asyncio.create_task(read())
    deadline = time.monotonic() + 30
    while not any(e.event == "progress" for e in received):
        assert time.monotonic() < deadline, "the stream did not open"
        if task.done():
            task.result()  # raises what went wrong
        await asyncio.sleep(0.05)
    return task, received


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_keys_on_loopback_tenants_and_revocation(auto_server: Server) -> None:
    srv = auto_server
    async with srv.client() as anonymous:
        # No key anywhere yet: local single-user mode, loopback only.
        assert (await anonymous.get("/api/v1/batches")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        # A key that is sent is checked even now.
        bogus = await anonymous.get("/api/v1/batches", headers=bearer(BOGUS))
        assert bogus.status_code == 401
        assert "invalid_token" in bogus.headers["www-authenticate"]
        assert (
            await anonymous.get("/api/v1/batches", headers={"Authorization": "x"})
        ).status_code == 401

        assert (await anonymous.post("/api/v1/batches", json={"id": "local"})).status_code == 201
        local_stream, local_events = await open_stream(anonymous, "/api/v1/batches/local/events")

        acme = ledger_cli(srv, "keys", "create", "--tenant", "acme", "--json")
        globex = ledger_cli(srv, "keys", "create", "--tenant", "globex", "--json")
        ops = ledger_cli(srv, "keys", "create", "--tenant", "ops", "--role", "operator", "--json")
        # Within a second of the first key, nothing is answered without one.
        await wait_for_status(anonymous, "/api/v1/batches", 401)
        assert (await anonymous.post("/api/v1/batches", json={"id": "anon"})).status_code == 401
        assert (await anonymous.get("/metrics")).status_code == 401
        assert (await anonymous.get("/api/v1/batches", headers=bearer(BOGUS))).status_code == 401
        # A keyless stream opened before the first key ends too.
        await asyncio.wait_for(local_stream, timeout=60)
        assert (local_events[-1].event, local_events[-1].data) == ("end", {"reason": "revoked"})

    a, b = bearer(str(acme["key"])), bearer(str(globex["key"]))
    async with srv.client(headers=a) as client_a, srv.client(headers=b) as client_b:
        created = await client_a.post("/api/v1/batches", json={"id": "secret"})
        assert created.status_code == 201, created.text
        assert created.json()["owner"] == "acme"
        upload = await client_a.post(
            "/api/v1/batches/secret/files", files=[("f", ("a.txt", b"a", "text/plain"))]
        )
        assert upload.status_code == 201, upload.text
        documents = await client_a.get("/api/v1/batches/secret/documents")
        assert documents.status_code == 200 and documents.json()["items"]
        document_id = documents.json()["items"][0]["id"]
        # Tenant B sees none of it, exactly as if it did not exist.
        for path in (
            "/api/v1/batches/secret",
            "/api/v1/batches/secret/documents",
            "/api/v1/batches/secret/events",
            f"/api/v1/documents/{document_id}",
        ):
            assert (await client_b.get(path)).status_code == 404, path
        assert [x["id"] for x in (await client_b.get("/api/v1/batches")).json()["items"]] == []
        # /metrics mixes every tenant's work: operator keys only.
        assert (await client_a.get("/metrics")).status_code == 403
        assert (await client_a.get("/metrics", headers=bearer(str(ops["key"])))).status_code == 200

        # Revoking A's key ends A's open stream, then A is refused.
        watcher, received = await open_stream(client_a, "/api/v1/batches/secret/events")
        ledger_cli(srv, "keys", "revoke", str(acme["id"]))
        await asyncio.wait_for(watcher, timeout=60)
        assert (received[-1].event, received[-1].data) == ("end", {"reason": "revoked"})
        assert (await client_a.get("/api/v1/batches")).status_code == 401
        assert (await client_b.get("/api/v1/batches")).status_code == 200


async def test_event_streams_per_key_are_limited(auto_server: Server) -> None:
    srv = auto_server
    key = ledger_cli(srv, "keys", "create", "--tenant", "streams", "--json")
    async with srv.client(headers=bearer(str(key["key"]))) as client:
        assert (await client.post("/api/v1/batches", json={"id": "s"})).status_code == 201
        url = "/api/v1/batches/s/events"
        async with client.stream("GET", url) as first, client.stream("GET", url) as second:
            assert (first.status_code, second.status_code) == (200, 200)
            third = await client.get(url)
            assert third.status_code == 429
            assert "LEDGER_MAX_SSE_STREAMS_PER_KEY" in third.json()["detail"]
        # Closed streams give their slots back (the server notices the disconnect).
        deadline = time.monotonic() + 30
        while True:
            async with client.stream("GET", url) as again:
                if again.status_code == 200:
                    break
                assert again.status_code == 429
            assert time.monotonic() < deadline, "closed streams still counted"
            await asyncio.sleep(0.2)


async def test_last_event_id_out_of_range_is_400(auto_server: Server) -> None:
    srv = auto_server
    key = ledger_cli(srv, "keys", "create", "--tenant", "ids", "--json")
    async with srv.client(headers=bearer(str(key["key"]))) as client:
        assert (await client.post("/api/v1/batches", json={"id": "ids"})).status_code == 201
        url = "/api/v1/batches/ids/events"
        for bad in (
            "99999999999999999999999",
            "9223372036854775808",
            "-1",
            "1e3",
            "+5",
            "0x10",
            "1_000",
        ):
            answer = await client.get(url, headers={"Last-Event-ID": bad})
            assert answer.status_code == 400, bad
            assert answer.headers["content-type"] == "application/problem+json"
        async with client.stream(
            "GET", url, headers={"Last-Event-ID": "9223372036854775807"}
        ) as highest:
            assert highest.status_code == 200


async def test_stream_slots_come_back_however_a_stream_ends() -> None:
    quota = StreamQuota(1)

    async def one() -> AsyncIterator[int]:
        yield 1

    never_started = quota.hold("k", one())
    with pytest.raises(TooManyRequestsException):
        quota.hold("k", one())
    del never_started  # a client gone before the first byte
    gc.collect()
    assert quota.open_count("k") == 0
    finished = quota.hold("k", one())
    assert [item async for item in finished] == [1]
    assert quota.open_count("k") == 0

    async def broken() -> AsyncIterator[int]:
        raise RuntimeError("the database went away")
        yield 0

    failing = quota.hold("k", broken())
    with pytest.raises(RuntimeError):
        await failing.__anext__()
    assert quota.open_count("k") == 0
