"""Real uvicorn servers in subprocesses on loopback ports, for the tus client to talk to.

A server can be SIGKILLed and started again on the same port, home folder and database, as
a crashed and restarted deployment would be. Tests read the database with plain SQL.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.app import Ledger
from ledger.db import migrate
from ledger.settings import Settings
from tests.conftest import sql
from tests.helpers.server import free_port, spawn, stop, uvicorn_args

REPO = Path(__file__).resolve().parents[2]
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class TusServer:
    """One ledger API server process and everything needed to restart it identically."""

    tmp: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    keys: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def home(self) -> Path:
        return self.tmp / "home"

    @property
    def db_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.home / 'ledger.db'}"

    @property
    def sync_url(self) -> str:
        return f"sqlite:///{self.home / 'ledger.db'}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/api/v1/uploads"

    @property
    def log(self) -> Path:
        return self.tmp / "server.log"

    def headers(self, tenant: str | None = "acme", **extra: str) -> dict[str, str]:
        auth = {} if tenant is None else {"Authorization": f"Bearer {self.keys[tenant]}"}
        return {**TUS, **auth, **extra}

    def prepare(self, tenants: tuple[str, ...]) -> None:
        self.home.mkdir(parents=True)
        migrate.upgrade(self.db_url)

        async def make_keys() -> None:
            settings = Settings(home=self.home, database_url=self.db_url)
            async with await Ledger.open(settings) as ledger:
                for tenant in tenants:
                    _, self.keys[tenant] = await ledger.keys.create(tenant)

        asyncio.run(make_keys())

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LEDGER_HOME": str(self.home),
            "LEDGER_DATABASE_URL": self.db_url,
            "LEDGER_HOST": "127.0.0.1",
            "LEDGER_AUTH": "on",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
            **self.env,
        }
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
        self.proc = spawn(
            uvicorn_args(self.port),
            env=env,
            log=self.log,
            cwd=self.tmp,
            port=self.port,
            append=True,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        assert self.proc is not None
        stop(self.proc, self.log)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        return sql(self.sync_url, statement, **params)

    def upload_row(self, upload_id: str) -> Any:
        rows = self.sql("SELECT * FROM uploads WHERE id = :id", id=upload_id)
        assert len(rows) == 1
        return rows[0]

    def create(
        self,
        length: int | None,
        *,
        batch: str,
        tenant: str | None = "acme",
        filename: str = "file.bin",
        **extra: str,
    ) -> str:
        """Create an upload (deferred length when ``length`` is None); its URL."""
        headers = self.headers(tenant, **extra)
        headers["Upload-Metadata"] = metadata(batch=batch, filename=filename)
        if length is None:
            headers["Upload-Defer-Length"] = "1"
        else:
            headers["Upload-Length"] = str(length)
        response = httpx.post(self.endpoint, headers=headers)
        assert response.status_code == 201, response.text
        return str(httpx.URL(self.endpoint).join(response.headers["Location"]))


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def upload_in_thread(uploader: Any) -> tuple[threading.Thread, list[BaseException]]:
    """Run a tus client's ``upload()`` in a thread that records the failure it ends with
    (the server is about to be killed under it)."""
    from tusclient.exceptions import TusCommunicationError, TusUploadFailed

    failure: list[BaseException] = []

    def run() -> None:
        try:
            uploader.upload()
        except (TusCommunicationError, TusUploadFailed) as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failure


def upload_id_of(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def launch(
    tmp: Path, env: dict[str, str] | None = None, tenants: tuple[str, ...] = ("acme", "globex")
) -> TusServer:
    server = TusServer(tmp, env or {})
    server.prepare(tenants)
    server.start()
    return server


@pytest.fixture(scope="module")
def tus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusServer]:
    """A server with keys on (tenants acme and globex) and a 64 MiB upload limit."""
    server = launch(
        tmp_path_factory.mktemp("tus"),
        {"LEDGER_TUS_MAX_BYTES": str(64 * 1024**2), "LEDGER_TUS_COMMIT_BYTES": str(1024**2)},
    )
    yield server
    server.stop()
