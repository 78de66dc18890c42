"""Status requests under load: a real API server and two worker processes on one SQLite
file, and 50 concurrent clients asking for progress. Readers never see a 5xx or a
"database is locked"; the p99 latency is printed."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.api.conftest import start_server, stop_server
from tests.conftest import settings_for
from tests.reliability.support import Zygote, batch_complete, wait_for

CLIENTS = 50
REQUESTS = 1_000
DOCUMENTS = 40_000
SLEEP = 0.05


@pytest.mark.slow
async def test_status_requests_while_workers_write(tmp_path: Path) -> None:
    server = await asyncio.to_thread(
        start_server, tmp_path, {"LEDGER_RATE_LIMIT_PER_MINUTE": "0", "LEDGER_AUTH": "off"}
    )
    sync_url = server.db_url.replace("sqlite+aiosqlite", "sqlite")
    zygote = Zygote(tmp_path / "logs")
    try:
        async with await Ledger.open(settings_for(server.db_url)) as ledger:
            # Work for at least DOCUMENTS * SLEEP / (2 * 32) = 31 s however fast the workers
            # get: the requests (a few seconds) must all meet workers that are writing.
            spec = BatchSpec(id="load", processor="sleep", options={"seconds": SLEEP})
            await ledger.queue.submit(spec, [SourceSpec(f"/doc/{i:05d}") for i in range(DOCUMENTS)])
        workers = [
            zygote.start(server.db_url, ["load"], concurrency=32, commit_interval_seconds=0.01)
            for _ in range(2)
        ]
        await wait_for(
            lambda: bool(_done(sync_url)), timeout=60, what="the workers to start writing"
        )

        latencies: list[float] = []
        failures: list[str] = []
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(REQUESTS):
            queue.put_nowait("/api/v1/batches/load" if i % 2 else "/api/v1/batches")

        async def client() -> None:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as http:
                while not queue.empty():
                    path = queue.get_nowait()
                    started = time.perf_counter()
                    response = await http.get(path)
                    latencies.append(time.perf_counter() - started)
                    if response.status_code != 200 or "locked" in response.text.lower():
                        failures.append(f"{path}: {response.status_code} {response.text[:300]}")

        started = time.monotonic()
        done_before = _done(sync_url)
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.monotonic() - started
        written = _done(sync_url) - done_before
        assert not batch_complete(sync_url, "load"), "the workers must write throughout"
        assert all(w.alive() for w in workers), [w.output()[-2000:] for w in workers]
    finally:
        zygote.close()
        await asyncio.to_thread(stop_server, server)  # fails on any traceback in its log

    assert failures == [], failures[:5]
    assert len(latencies) == REQUESTS
    q = statistics.quantiles(latencies, n=100)
    print(
        f"\nload: {REQUESTS} status requests from {CLIENTS} clients in {elapsed:.1f} s"
        f" while workers recorded {written} documents; latency p50 {q[49] * 1000:.0f} ms,"
        f" p99 {q[98] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


def _done(sync_url: str) -> int:
    from tests.conftest import sql

    return int(sql(sync_url, "SELECT n_done FROM batches WHERE id = 'load'")[0][0])
