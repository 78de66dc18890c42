"""A real uvicorn server in a subprocess on a free loopback port, over a migrated SQLite file.

The tests talk to it over HTTP with httpx, and drive processing by calling the ledger core
(claim, complete) on the same database file, as a worker process would.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ledger.app import Ledger
from ledger.db import migrate
from ledger.errors import PermanentError
from ledger.model import ErrorInfo, Outcome
from ledger.settings import Settings
from tests.helpers.server import free_port, spawn, stop, uvicorn_args

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    base_url: str
    home: Path
    root: Path  # the allowed root for server paths
    db_url: str
    proc: subprocess.Popen[bytes]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> key
    key_ids: dict[str, str] = field(default_factory=dict)

    def settings(self) -> Settings:
        return Settings(home=self.home, database_url=self.db_url)

    def headers(self, tenant: str | None) -> dict[str, str]:
        return {} if tenant is None else {"Authorization": f"Bearer {self.keys[tenant]}"}

    def client(
        self, tenant: str | None = None, *, headers: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={**self.headers(tenant), **(headers or {})},
            timeout=httpx.Timeout(60.0),
            **kwargs,  # type: ignore[arg-type]
        )


def start_server(
    tmp: Path,
    env: dict[str, str],
    tenants: tuple[str, ...] = (),
    *,
    operators: tuple[str, ...] = (),
    db_url: str | None = None,
) -> Server:
    """A server over a fresh database (a new SQLite file, or ``db_url`` already migrated),
    with a tenant key for each of ``tenants`` and an operator key for each of
    ``operators`` (keys and ids by name in the result)."""
    home = tmp / "home"
    root = tmp / "root"
    home.mkdir(parents=True)
    root.mkdir()
    if db_url is None:
        db_url = f"sqlite+aiosqlite:///{home / 'ledger.db'}"
        migrate.upgrade(db_url)
    server_keys: dict[str, str] = {}
    key_ids: dict[str, str] = {}

    async def make_keys() -> None:
        async with await Ledger.open(Settings(home=home, database_url=db_url)) as ledger:
            for tenant in tenants:
                key_ids[tenant], server_keys[tenant] = await ledger.keys.create(tenant)
            for name in operators:
                key_ids[name], server_keys[name] = await ledger.keys.create(name, role="operator")

    asyncio.run(make_keys())
    port = free_port()
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LEDGER_HOME": str(home),
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_ALLOWED_ROOTS": str(root),
        # Every tenant may use the one root (isolation of roots has tests of its own).
        "LEDGER_TENANT_ROOTS": json.dumps({tenant: [str(root)] for tenant in tenants}),
        "LEDGER_HOST": "127.0.0.1",
        "LEDGER_SSE_POLL_SECONDS": "0.05",
        **env,
    }
    log = tmp / "server.log"
    proc = spawn(uvicorn_args(port), env=full_env, log=log, cwd=tmp, port=port)
    base_url = f"http://127.0.0.1:{port}"
    return Server(base_url, home, root, db_url, proc, log, server_keys, key_ids)


def stop_server(server: Server) -> None:
    stop(server.proc, server.log)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main server: API keys required, tenants 'acme' and 'globex', an operator key
    'ops', no rate limit."""
    srv = start_server(
        tmp_path_factory.mktemp("api"),
        {
            "LEDGER_AUTH": "on",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGER_MAX_UPLOAD_BYTES": str(1024**3),
        },
        tenants=("acme", "globex", "revoked"),
        operators=("ops",),
    )
    yield srv
    stop_server(srv)


@pytest.fixture
async def ledger(server: Server) -> AsyncIterator[Ledger]:
    async with await Ledger.open(server.settings()) as led:
        yield led


async def drain(
    ledger: Ledger,
    batch_id: str,
    *,
    fail: Callable[[str], str | None] = lambda source: None,
    limit: int | None = None,
) -> int:
    """Process the batch's due documents as a worker would: claim, then complete each one.

    ``fail(source)`` returns an error code for documents that should fail permanently.
    Stops after ``limit`` documents when given. Returns how many were completed.
    """
    worker = await ledger.workers.register(concurrency=8)
    done = 0
    while limit is None or done < limit:
        take = 8 if limit is None else min(8, limit - done)
        claimed = await ledger.queue.claim(worker, take, batch_ids=[batch_id])
        if not claimed:
            break
        outcomes = []
        for doc in claimed:
            code = fail(doc.source)
            if code is None:
                outcomes.append(Outcome.done(doc, {"chunks": 1}))
            else:
                error = PermanentError(code, f"{code}: {Path(doc.source).name}")
                outcomes.append(
                    Outcome.failed(
                        doc, ErrorInfo(code=error.code, message=error.message, retryable=False)
                    )
                )
        result = await ledger.queue.complete(worker, outcomes)
        assert not result.lost
        done += len(result.recorded)
    await ledger.workers.stopped(worker)
    return done
