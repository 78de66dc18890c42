"""API callers name only the processors the operator allows, and nothing a processor raises
stops the server: a real ``ledger serve``-style server (uvicorn, in-process workers, a
process pool) with hostile processors allowed by the operator."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Server, start_server, stop_server
from tests.conftest import sql
from tests.pipeline.support import sync_url_of

HOSTILE = "tests.helpers.hostile"
ALLOWED = ",".join(
    [
        f"pool_exit={HOSTILE}:exits",
        f"thread_exit={HOSTILE}:exits_in_thread",
        f"{HOSTILE}:interrupts",
        f"{HOSTILE}:raises_base",
        f"{HOSTILE}:exits_on_the_loop",
        f"{HOSTILE}:fine",
    ]
)
ZEN = "Beautiful is better than ugly"  # what importing the module ``this`` prints


@pytest.fixture(scope="module")
def policy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("policy"),
        {
            "LEDGER_AUTH": "on",
            "LEDGER_SERVE_WORKERS": "true",
            "LEDGER_POLL_SECONDS": "0.05",
            "LEDGER_PROCESS_WORKERS": "1",
            "LEDGER_CONCURRENCY": "2",
            "LEDGER_PROCESSORS": ALLOWED,
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


def _batch_rows(server: Server, batch_id: str) -> int:
    return len(sql(sync_url_of(server.db_url), "SELECT id FROM batches WHERE id = :b", b=batch_id))


def _folder(server: Server, name: str) -> Path:
    folder = server.root / name
    folder.mkdir()
    (folder / "one.txt").write_text(f"the document of {name}")
    return folder


@pytest.mark.parametrize(
    "processor",
    ["sys:exit", "builtins:exit", "this:x", "os:system", f"{HOSTILE}:not_listed", "unknown"],
)
async def test_a_processor_the_operator_did_not_allow_is_422_and_no_batch(
    policy_server: Server, processor: str
) -> None:
    batch_id = f"refused-{processor.replace(':', '-')}"
    folder = _folder(policy_server, batch_id)
    async with policy_server.client("acme") as client:
        response = await client.post(
            "/api/v1/batches",
            json={"id": batch_id, "processor": processor, "paths": [str(folder)]},
        )
        assert response.status_code == 422, response.text
        assert "not allowed" in response.json()["detail"]
        assert (await client.get(f"/api/v1/batches/{batch_id}")).status_code == 404
        assert (await client.get("/health")).status_code == 200
    assert _batch_rows(policy_server, batch_id) == 0
    # Checked by name only: the module a caller named was never imported.
    assert ZEN not in policy_server.log.read_text(errors="replace")
    assert policy_server.proc.poll() is None


def _tus_metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


@pytest.mark.parametrize(
    "metadata",
    [
        {"batch": "tus-exit", "filename": "a.txt", "processor": "sys:exit"},
        {"batch": "tus-key", "filename": "a.txt", "api_key": "k"},
        {"batch": "tus-url", "filename": "a.txt", "base_url": "http://127.0.0.1:9/v1"},
    ],
)
async def test_tus_metadata_naming_code_or_secrets_is_refused(
    policy_server: Server, metadata: dict[str, str]
) -> None:
    headers = {
        **policy_server.headers("acme"),
        "Tus-Resumable": "1.0.0",
        "Upload-Length": "5",
        "Upload-Metadata": _tus_metadata(**metadata),
    }
    async with httpx.AsyncClient(base_url=policy_server.base_url) as client:
        response = await client.post("/api/v1/uploads", headers=headers)
    assert response.status_code == 422, response.text
    url = sync_url_of(policy_server.db_url)
    assert sql(url, "SELECT id FROM uploads WHERE batch_id = :b", b=metadata["batch"]) == []
    assert _batch_rows(policy_server, metadata["batch"]) == 0


async def _finished(client: httpx.AsyncClient, batch_id: str) -> dict[str, int]:
    for _ in range(1200):
        progress = (await client.get(f"/api/v1/batches/{batch_id}")).json()
        if progress["batch"]["complete"]:
            return {k: v for k, v in progress["batch"]["counts"].items() if v}
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish")


@pytest.mark.parametrize(
    "processor",
    [
        "pool_exit",
        "thread_exit",
        f"{HOSTILE}:interrupts",
        f"{HOSTILE}:raises_base",
        f"{HOSTILE}:exits_on_the_loop",
    ],
)
async def test_an_allowed_processor_that_exits_fails_only_its_document(
    policy_server: Server, processor: str
) -> None:
    hostile = f"hostile-{processor.rsplit(':', 1)[-1]}"
    after = f"after-{hostile}"
    async with policy_server.client("acme") as client:
        created = await client.post(
            "/api/v1/batches",
            json={
                "id": hostile,
                "processor": processor,
                "paths": [str(_folder(policy_server, hostile))],
            },
        )
        assert created.status_code == 201, created.text
        assert await _finished(client, hostile) == {"failed": 1}
        # The server and its workers live on: the next document is processed.
        created = await client.post(
            "/api/v1/batches",
            json={
                "id": after,
                "processor": f"{HOSTILE}:fine",
                "paths": [str(_folder(policy_server, after))],
            },
        )
        assert created.status_code == 201, created.text
        assert await _finished(client, after) == {"done": 1}
    assert policy_server.proc.poll() is None
    url = sync_url_of(policy_server.db_url)
    ((code, message),) = sql(
        url, "SELECT error_code, error_message FROM documents WHERE batch_id = :b", b=hostile
    )
    assert code == "processor_exit"
    assert "the processor raised" in message
    # Failed for good at once: one attempt, not retried until the attempts run out.
    assert len(sql(url, "SELECT id FROM attempts WHERE document_id IN "
                   "(SELECT id FROM documents WHERE batch_id = :b)", b=hostile)) == 1  # fmt: skip


async def test_the_dashboard_offers_the_allowed_processors(policy_server: Server) -> None:
    async with policy_server.client() as client:
        page = await client.get("/new")
    assert page.status_code == 200
    for name in ("ingest", "noop", "sleep", "pool_exit", f"{HOSTILE}:fine"):
        assert f'<option value="{name}">' in page.text, name
    assert "sys:exit" not in page.text
