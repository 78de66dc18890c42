"""``ledger serve``'s in-process workers: when their loop stops on an error, ``/health``
says so (503, "degraded", the error) and the loop is started again once it can run.

The error is real: the server runs with a file size limit (RLIMIT_FSIZE), so its database
writes fail with an I/O error as on a full disk; the test then lifts the limit from outside
(prlimit), as an operator freeing space would, and the workers come back by themselves.
"""

from __future__ import annotations

import resource
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.conftest import Cli
from tests.helpers.server import free_port

# Room for SQLite's shared-memory index (32 KiB) and a few log frames, not for the claims.
FILE_SIZE_LIMIT = 40_000
PENDING = 50


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, resource.RLIM_INFINITY))


def _health(port: int) -> httpx.Response | None:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    except httpx.TransportError:
        return None


def _wait_health(proc: subprocess.Popen[str], port: int, status: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        response = _health(port)
        if response is not None and response.status_code == status:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(0.05)
    raise AssertionError(f"/health never answered {status}")


def test_health_reports_stopped_workers_and_they_restart(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a\n")
    assert cli("ingest", str(docs), "-p", "noop").code == 0
    with sqlite3.connect(cli.db) as conn:  # work for the server's workers to claim
        for i in range(PENDING):
            conn.execute(
                "INSERT INTO documents (batch_id, source, next_attempt_at, created_at, "
                "updated_at) SELECT batch_id, source || ?, next_attempt_at, created_at, "
                "updated_at FROM documents ORDER BY id LIMIT 1",
                (f".{i}",),
            )

    port = free_port()
    proc = subprocess.Popen(
        cli.command("serve", "--port", str(port)),
        env={
            **cli.env,
            "LEDGER_WORKER_RESTART_BASE_SECONDS": "0.5",
            "LEDGER_WRITE_FAILURE_MAX_WAIT_SECONDS": "0.5",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=_limited,
    )
    try:
        down = _wait_health(proc, port, 503)
        assert down["status"] == "degraded"
        assert down["database"] == "ok"  # reads still work: it is the workers that stopped
        assert down["workers"].startswith("stopped on an error (")
        assert "cannot write to the database" in down["workers"] or "I/O" in down["workers"]

        # Space again: the next restart runs, /health is ok, and the work gets done.
        resource.prlimit(
            proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        )
        up = _wait_health(proc, port, 200)
        assert up["workers"] == "ok"
        cli.wait_for("SELECT count(*) FROM documents WHERE status = 'done'", lambda n: n == 51)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    # uvicorn ends an orderly SIGTERM shutdown by re-raising the signal.
    assert proc.returncode in (0, -15), output[-3000:]
    assert "Application shutdown complete." in output
    assert "restarting the in-process workers" in output
