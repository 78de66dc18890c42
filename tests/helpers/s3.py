"""A real S3-compatible server for tests: moto's server mode in a subprocess on loopback.

Every test that uses it talks to it over HTTP with real clients, from this process and from
the API and worker processes it starts, which share nothing with each other but the database
and this store. Under CI (``CI=true``) a missing moto fails the test; on a developer's
machine it is a loud skip.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers.server import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Credentials the test server accepts (moto checks none by default); never real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ledger-test",
    "AWS_SECRET_ACCESS_KEY": "ledger-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        """The variables a process needs to reach this store (the operator's settings)."""
        return {**CREDENTIALS, "LEDGER_S3_ENDPOINT_URL": self.endpoint}

    def client(self) -> S3Client:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"ledger-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in listed.get("Contents", []))


def require_moto() -> None:
    """Fail under CI, skip loudly elsewhere, when moto's server is not installed."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        reason = "moto[server] is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"moto server did not listen on {port}")


def start_s3(tmp: Path, env: dict[str, str] | None = None) -> S3Server:
    """Start moto's S3 server on a free loopback port (``env``: more of its settings)."""
    require_moto()
    port = free_port()
    log = tmp / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **CREDENTIALS, **(env or {})},
        )
    _wait_listening(port, proc, log)
    return S3Server(f"http://127.0.0.1:{port}", proc)


def stop_s3(server: S3Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server for the whole test run; this process's AWS variables point at it."""
    server = start_s3(tmp_path_factory.mktemp("s3"))
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield server
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_s3(server)
