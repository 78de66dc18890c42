"""A worker outlives its database connections: the server ends every one of them (as a
restart or failover does), several times while the worker waits for work and several
times mid-batch, and the worker goes on: it finishes the batch, each document done exactly
once, and stops cleanly when told."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ledger.db.engine import application_name
from tests.conftest import sql
from tests.helpers.cli_worker import start_cli_worker
from tests.reliability.test_processes import assert_exactly_once, submit

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = 400


def _start_worker(url: str) -> subprocess.Popen[str]:
    return start_cli_worker(url, concurrency="8", poll_seconds="0.1")


def _done(sync_url: str) -> int:
    return int(sql(sync_url, "SELECT n_done FROM batches WHERE id = 'b'")[0][0])


async def _progress_past(sync_url: str, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while _done(sync_url) <= count:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker made no progress"
        await asyncio.sleep(0.02)


def _end_connections_of(sync_url: str, pid: int) -> int:
    name = application_name(pid)
    rows = sql(
        sync_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = :name AND datname = current_database()",
        name=name,
    )
    return int(rows[0][0])


async def _reconnected(sync_url: str, pid: int, proc: subprocess.Popen[str]) -> None:
    """Until the worker holds a connection again (its idle reads run every poll)."""
    name = application_name(pid)
    deadline = time.monotonic() + 60
    while not sql(
        sync_url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = :name AND datname = current_database()",
        name=name,
    )[0][0]:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker did not connect again"
        await asyncio.sleep(0.02)


async def test_a_worker_whose_connections_the_server_ends_goes_on(
    pg_url: str, pg_sync_url: str
) -> None:
    proc = _start_worker(pg_url)
    try:
        deadline = time.monotonic() + 60
        while not sql(pg_sync_url, f"SELECT count(*) FROM workers WHERE pid = {proc.pid}")[0][0]:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the worker did not start"
            await asyncio.sleep(0.05)
        # Idle: the worker's reads between polls meet the ended connections.
        for _ in range(3):
            await _reconnected(pg_sync_url, proc.pid, proc)
            assert _end_connections_of(pg_sync_url, proc.pid) >= 1
            await asyncio.sleep(0.3)
        # Busy: connections ended while documents are claimed, run and recorded.
        await submit(pg_url, DOCUMENTS, seconds=0.01)
        for step in range(1, 5):
            await _progress_past(pg_sync_url, step * DOCUMENTS // 10, proc)
            _end_connections_of(pg_sync_url, proc.pid)
        await _progress_past(pg_sync_url, DOCUMENTS - 1, proc)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "the database is unreachable" in err
    assert_exactly_once(pg_sync_url, DOCUMENTS)
