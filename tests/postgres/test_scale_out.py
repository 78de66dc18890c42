"""Many real worker processes on one PostgreSQL database: exactly once, and kill -9 safe."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import pytest

from ledger.db.engine import application_name
from tests.conftest import sql
from tests.reliability.test_processes import (
    assert_exactly_once,
    finish,
    start_worker,
    start_workers_together,
    submit,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _counters_match_group_by(sync_url: str) -> None:
    counters = sql(
        sync_url,
        "SELECT n_pending, n_running, n_done, n_failed, n_skipped, n_cancelled FROM batches",
    )
    actual = dict(sql(sync_url, "SELECT status, count(*) FROM documents GROUP BY status"))
    statuses = ("pending", "running", "done", "failed", "skipped", "cancelled")
    assert counters == [tuple(actual.get(s, 0) for s in statuses)]


async def test_four_worker_processes_share_ten_thousand_documents(
    pg_url: str, pg_sync_url: str
) -> None:
    n = 10_000
    await submit(pg_url, n, seconds=0)
    procs = await start_workers_together(
        pg_url, pg_sync_url, 4, concurrency=32, claim_batch=32, poll_seconds=0.1
    )
    stats = [finish(p, timeout=600) for p in procs]
    assert sum(s["done"] for s in stats) == n
    assert all(s["done"] > 0 for s in stats)  # every process took part
    assert_exactly_once(pg_sync_url, n)
    _counters_match_group_by(pg_sync_url)
    # Four processes worked at once: their attempts interleave in time.
    per_worker = sql(
        pg_sync_url,
        "SELECT worker_id, min(started_at), max(finished_at) FROM attempts GROUP BY worker_id",
    )
    assert len(per_worker) == 4
    latest_start = max(r[1] for r in per_worker)
    earliest_end = min(r[2] for r in per_worker)
    assert latest_start < earliest_end


async def _wait_for(
    sync_url: str, query: str, at_least: int, procs: list[subprocess.Popen[str]]
) -> None:
    deadline = time.monotonic() + 120
    while sql(sync_url, query)[0][0] < at_least:
        assert time.monotonic() < deadline, "no progress"
        for p in procs:
            assert p.poll() is None, p.stderr.read() if p.stderr else ""
        await asyncio.sleep(0.05)


async def _wait_until_zero(sync_url: str, query: str) -> None:
    deadline = time.monotonic() + 60
    while sql(sync_url, query)[0][0]:
        assert time.monotonic() < deadline, "the server kept the killed workers' connections"
        await asyncio.sleep(0.05)


async def test_sigkill_half_the_workers_mid_batch(pg_url: str, pg_sync_url: str) -> None:
    n = 4_000
    await submit(pg_url, n, seconds=0.01)
    settings = {
        "concurrency": 40,
        "claim_batch": 20,
        "lease_seconds": 3,
        "commit_interval_seconds": 0.01,
        "poll_seconds": 0.5,
    }
    procs = [start_worker(pg_url, "b", **settings) for _ in range(4)]
    await _wait_for(pg_sync_url, "SELECT n_done FROM batches", n // 4, procs)
    victims, survivors = procs[:2], procs[2:]
    names = ", ".join(f"'{application_name(v.pid)}'" for v in victims)
    victim_connections = (
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name IN ({names})"
    )
    assert sql(pg_sync_url, victim_connections)[0][0] > 0, "workers name their connections"
    for v in victims:
        v.send_signal(signal.SIGKILL)
    for v in victims:
        v.wait()
    # A killed client's last COMMIT may still be in its socket: the server runs it after
    # the process is gone. Look at the orphans only once the server has closed every
    # connection the victims had (their transactions committed or rolled back by then).
    await _wait_until_zero(pg_sync_url, victim_connections)
    pids = ", ".join(str(v.pid) for v in victims)
    orphaned = {
        r[0]
        for r in sql(
            pg_sync_url,
            "SELECT d.id FROM documents d JOIN workers w ON w.id = d.lease_owner"
            f" WHERE d.status = 'running' AND w.pid IN ({pids})",
        )
    }
    assert orphaned, "the kills should have left leased documents behind"

    replacements = [start_worker(pg_url, "b", **settings) for _ in range(2)]
    stats = [finish(p, timeout=300) for p in survivors + replacements]
    assert sum(s["done"] for s in stats) > 0
    assert_exactly_once(pg_sync_url, n)
    _counters_match_group_by(pg_sync_url)
    # Every lease the dead workers held was rescued and recorded as such, exactly once.
    rescued = sql(
        pg_sync_url,
        "SELECT a.document_id FROM attempts a JOIN workers w ON w.id = a.worker_id"
        f" WHERE a.outcome = 'lease_expired' AND w.pid IN ({pids})",
    )
    assert sorted(r[0] for r in rescued) == sorted(orphaned)
    # And the batch was stamped complete, once.
    assert sql(pg_sync_url, "SELECT count(*) FROM batches WHERE completed_at IS NULL") == [(0,)]
    completed = "SELECT count(*) FROM events WHERE kind = 'batch_completed'"
    assert sql(pg_sync_url, completed) == [(1,)]
