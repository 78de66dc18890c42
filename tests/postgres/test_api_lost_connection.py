"""The API when the database drops its connections (a restart, a failover): a request that
meets a dropped connection is answered 503 with Retry-After, not 500, the next one works,
and the server logs one line for it, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from ledger.db.engine import application_name
from tests.conftest import sql
from tests.helpers.server import free_port, spawn, stop, uvicorn_args

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]


def test_a_request_on_a_dropped_connection_is_told_to_retry(
    pg_url: str, pg_sync_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
        "PYTHONPATH": str(REPO),
        "LEDGER_HOME": str(tmp_path / "home"),
        "LEDGER_DATABASE_URL": pg_url,
        "LEDGER_SERVE_WORKERS": "false",
    }
    log = tmp_path / "server.log"
    proc = spawn(uvicorn_args(port), env=env, log=log, cwd=tmp_path, port=port)
    url = f"http://127.0.0.1:{port}/api/v1/batches"
    statuses: list[int] = []
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(10):
                assert client.get(url).status_code == 200
                # Every connection of the server ends at once, as in a restart.
                sql(
                    pg_sync_url,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :name AND datname = current_database()",
                    name=application_name(proc.pid),
                )
                response = client.get(url)
                statuses.append(response.status_code)
                assert response.status_code in (200, 503), response.text
                if response.status_code == 503:
                    assert response.headers["retry-after"] == "1"
                    assert "database is not available" in response.json()["detail"]
                assert client.get(url).status_code == 200
    finally:
        stop(proc, log)
    # A request right after the drop meets the connection it used a moment ago (pinged
    # only after a second idle): at least one of ten did.
    assert 503 in statuses, statuses
    assert "the database is unreachable" in log.read_text()
