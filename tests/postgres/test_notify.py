"""Idle workers wake on LISTEN/NOTIFY, not on their poll (here: hourly, so a worker that
only polled would hit the test's deadline); and survive a dropped listening connection."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql
from tests.helpers.cli_worker import start_cli_worker

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
# This test's database only: other sessions on a shared server listen too.
LISTENING = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE query = 'LISTEN \"ledger_due\"' AND datname = current_database()"
)


def start_idle_worker(url: str) -> subprocess.Popen[str]:
    return start_cli_worker(url, poll_seconds="3600", wake_jitter_seconds="0.1")


async def wait_listening(sync_url: str, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 30
    while not (rows := sql(sync_url, LISTENING)):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started listening"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # let it claim nothing and settle into its hourly idle wait
    return int(rows[0][0])


async def submit_and_time(url: str, sync_url: str, batch: str) -> float:
    async with await Ledger.open(settings_for(url)) as ledger:
        started = time.monotonic()
        await ledger.queue.submit(
            BatchSpec(id=batch, processor="noop"), [SourceSpec(f"/{batch}/1")]
        )
    query = f"SELECT count(*) FROM documents WHERE batch_id = '{batch}' AND status = 'done'"
    while sql(sync_url, query) != [(1,)]:
        assert time.monotonic() - started < 60, "the idle worker did not wake up"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_idle_worker_wakes_on_notify_and_after_losing_its_listener(
    pg_url: str, pg_sync_url: str
) -> None:
    proc = start_idle_worker(pg_url)
    try:
        # The pid is read now: pg_stat_activity shows a connection's latest statement, and the
        # listener's liveness check ("SELECT 1", every 15 s) replaces its LISTEN there.
        pid = await wait_listening(pg_sync_url, proc)
        await submit_and_time(pg_url, pg_sync_url, "first")

        # Cut the listening connection on the server side, as a restart or failover would.
        assert sql(pg_sync_url, f"SELECT pg_terminate_backend({pid})") == [(True,)]
        deadline = time.monotonic() + 30
        while True:
            rows = sql(pg_sync_url, LISTENING)
            if rows and rows[0][0] != pid:
                break
            assert time.monotonic() < deadline, "the listener did not reconnect"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await submit_and_time(pg_url, pg_sync_url, "second")

        # Resume and retry_failed announce too: a paused batch's work is picked up at once.
        async with await Ledger.open(settings_for(pg_url)) as ledger:
            await ledger.queue.submit(BatchSpec(id="third", processor="noop"), [])
            await ledger.control.pause("third")
            await ledger.queue.submit(BatchSpec(id="third", processor="noop"), [SourceSpec("/t/1")])
            await asyncio.sleep(1.0)
            assert sql(pg_sync_url, "SELECT n_pending FROM batches WHERE id = 'third'") == [(1,)]
            started = time.monotonic()
            await ledger.control.resume("third")
        while sql(pg_sync_url, "SELECT n_done FROM batches WHERE id = 'third'") != [(1,)]:
            assert time.monotonic() - started < 60, "resume did not wake the worker"
            await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
