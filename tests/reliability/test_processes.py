"""Real worker processes on one database: sharing work, and surviving kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql

ROOT = Path(__file__).resolve().parents[2]


def start_worker(url: str, batch: str, **settings: Any) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({f"LEDGER_{k.upper()}": str(v) for k, v in settings.items()})
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.worker_proc", url, batch],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def submit(url: str, n: int, **options: Any) -> None:
    async with await Ledger.open(settings_for(url)) as ledger:
        spec = BatchSpec(id="b", processor="sleep", options=options, max_attempts=5)
        await ledger.queue.submit(spec, [SourceSpec(f"/doc/{i:05d}") for i in range(n)])


async def start_workers_together(
    url: str, sync_url: str, count: int, **settings: Any
) -> list[subprocess.Popen[str]]:
    """Start ``count`` workers on batch ``b`` and let them at it only once all of them run.

    A worker that starts first could otherwise finish a small batch before the last one has
    imported Python: the batch waits paused until every process has registered.
    """
    async with await Ledger.open(settings_for(url)) as ledger:
        await ledger.control.pause("b", reason="waiting for every worker to start")
        procs = [start_worker(url, "b", **settings) for _ in range(count)]
        pids = ", ".join(str(p.pid) for p in procs)
        deadline = time.monotonic() + 60
        while sql(sync_url, f"SELECT count(*) FROM workers WHERE pid IN ({pids})")[0][0] < count:
            assert time.monotonic() < deadline, "the workers did not start"
            for p in procs:
                assert p.poll() is None, p.stderr.read() if p.stderr else ""
            await asyncio.sleep(0.05)
        await ledger.control.resume("b")
    return procs


async def _sessions_gone(db_url: str, sync_url: str) -> None:
    """On PostgreSQL, wait until the killed worker's sessions have ended: a COMMIT it sent
    just before dying is still applied by its server process, so counting running
    documents before then can count some that are about to be done."""
    if not db_url.startswith("postgresql"):
        return
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 30
    while sql(sync_url, query)[0][0] > 0:
        assert time.monotonic() < deadline, "the killed worker's sessions did not end"
        await asyncio.sleep(0.05)


def assert_exactly_once(sync_url: str, n: int) -> None:
    """Every document done, by exactly one attempt, and no two attempts overlapped."""
    assert sql(sync_url, "SELECT status, count(*) FROM documents GROUP BY status") == [("done", n)]
    done_attempts = sql(
        sync_url,
        "SELECT document_id, count(*) FROM attempts WHERE outcome = 'done'"
        " GROUP BY document_id HAVING count(*) <> 1",
    )
    assert done_attempts == []
    assert (
        sql(sync_url, "SELECT count(DISTINCT document_id) FROM attempts WHERE outcome = 'done'")[0][
            0
        ]
        == n
    )
    # Leases never overlap: each attempt of a document starts after the previous one ended.
    overlaps = sql(
        sync_url,
        "SELECT a.id, b.id FROM attempts a JOIN attempts b ON a.document_id = b.document_id"
        " AND a.id < b.id AND b.started_at < a.finished_at",
    )
    assert overlaps == []
    counters = sql(sync_url, "SELECT n_done, n_pending, n_running FROM batches")
    assert counters == [(n, 0, 0)]


@pytest.mark.slow
async def test_three_worker_processes_share_one_batch(db_url: str, sync_url: str) -> None:
    await submit(db_url, 1500, seconds=0.01)
    procs = await start_workers_together(
        db_url, sync_url, 3, concurrency=25, claim_batch=16, poll_seconds=0.05
    )
    stats = [finish(p) for p in procs]
    assert sum(s["done"] for s in stats) == 1500
    assert all(s["done"] > 0 for s in stats)  # the work really was shared
    assert_exactly_once(sync_url, 1500)


@pytest.mark.slow
async def test_sigkill_mid_batch_then_restart_loses_nothing(db_url: str, sync_url: str) -> None:
    n = 1000
    await submit(db_url, n, seconds=0.02)
    settings = {"concurrency": 40, "lease_seconds": 2, "commit_interval_seconds": 0.01}
    # Kill when more is done and the worker holds leases. Its documents start and end
    # together, and between recording a group and claiming the next it holds none for a
    # moment; a kill that lands there orphans nothing, so that worker is replaced and
    # killed again (each try leaves the batch further along, and correct).
    orphaned = 0
    for _ in range(5):
        victim = start_worker(db_url, "b", **settings)
        target = sql(sync_url, "SELECT n_done FROM batches")[0][0] + n // 10
        deadline = time.monotonic() + 60
        while (
            sql(sync_url, "SELECT n_done FROM batches")[0][0] < target
            or sql(sync_url, "SELECT n_running FROM batches")[0][0] == 0
        ):
            assert time.monotonic() < deadline, "the worker made no progress"
            assert victim.poll() is None, victim.stderr.read() if victim.stderr else ""
            await asyncio.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        await _sessions_gone(db_url, sync_url)
        orphaned = sql(sync_url, "SELECT count(*) FROM documents WHERE status = 'running'")[0][0]
        if orphaned:
            break
    assert orphaned > 0, "five kills in a row left no leased document behind"
    done_at_kill = sql(sync_url, "SELECT n_done FROM batches")[0][0]

    started = time.monotonic()
    stats = finish(start_worker(db_url, "b", **settings))
    assert stats["done"] == n - done_at_kill  # only what was not done is done again
    assert_exactly_once(sync_url, n)
    rescued = sql(sync_url, "SELECT count(*) FROM attempts WHERE outcome = 'lease_expired'")
    assert rescued[0][0] == orphaned
    assert time.monotonic() - started < 60
