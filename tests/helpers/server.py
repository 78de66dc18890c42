"""A real server in a subprocess on a loopback port: start it, wait until it answers,
stop it, and check that no request crashed it. Shared by the API, tus and dashboard tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

UVICORN_APP = [
    "-m", "uvicorn", "--factory", "ledger.api.app:from_env",
    "--http", "ledger.api.server:HeaderTimeoutProtocol",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_args(port: int) -> list[str]:
    """The API under uvicorn, as a deployment would run it (workers elsewhere)."""
    return [
        *UVICORN_APP, "--host", "127.0.0.1", "--port", str(port),
        "--timeout-graceful-shutdown", "2", "--log-level", "warning",
    ]  # fmt: skip


def spawn(
    args: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path,
    port: int,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``python <args>`` with its output in ``log``; return once ``/health`` answers."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=dict(env),
        stdout=log.open("ab" if append else "wb"),
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}/health"
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {log.read_text()}")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], log: Path, *, timeout: float = 10) -> None:
    """SIGTERM (a graceful stop), then check the log: no request may have crashed the
    server, and an unhandled error is logged as such."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text(errors="replace")
    assert "unhandled error" not in text, text[-5000:]
    assert "Traceback" not in text, text[-5000:]
