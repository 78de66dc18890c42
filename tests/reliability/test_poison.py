"""A poison document: processing it kills the process, every time.

It must end ``failed`` after exactly ``max_attempts`` attempts, each recorded as the crash it
was, while the rest of its batch finishes and the workers stop dying for it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql
from tests.helpers.poison import POISON
from tests.reliability.support import (
    Zygote,
    assert_counters_match,
    assert_sqlite_intact,
    batch_complete,
    scalar,
    wait_for,
)

MAX_ATTEMPTS = 3
N = 40
SETTINGS: dict[str, Any] = {
    "lease_seconds": 1.0,
    "poll_seconds": 0.1,
    "commit_interval_seconds": 0.01,
    "backoff_base_seconds": 0.05,
    "backoff_jitter": 0,
    "process_workers": 1,
    # The breaker would pause the batch on repeated crashes; this test is about one document.
    "breaker_window": 1000,
}


async def submit(url: str, processor: str) -> int:
    """N documents, one of them poison; returns the poison document's id."""
    async with await Ledger.open(settings_for(url)) as ledger:
        spec = BatchSpec(id="b", processor=processor, max_attempts=MAX_ATTEMPTS)
        sources = [SourceSpec(f"/doc/{i:03d}") for i in range(N - 1)]
        sources.insert(N // 2, SourceSpec(f"/doc/{POISON}"))
        await ledger.queue.submit(spec, sources)
    return int(scalar(url_sync(url), "SELECT id FROM documents WHERE source LIKE '%poison%'"))


def url_sync(url: str) -> str:
    return url.replace("sqlite+aiosqlite", "sqlite").replace("+asyncpg", "+psycopg2")


def assert_rest_done_once(sync_url: str, poison_id: int) -> None:
    rows = sql(
        sync_url,
        "SELECT status, count(*) FROM documents WHERE id <> :p GROUP BY status",
        p=poison_id,
    )
    assert rows == [("done", N - 1)]
    twice = sql(
        sync_url,
        "SELECT document_id FROM attempts WHERE outcome = 'done' GROUP BY document_id"
        " HAVING count(*) > 1",
    )
    assert twice == []


@pytest.mark.slow
async def test_poison_kills_the_worker_each_time(
    db_url: str, sync_url: str, tmp_path: Path
) -> None:
    """Async processor: each attempt kills the worker process. A supervisor restarts dead
    workers while work remains; after max_attempts deaths the document is failed and no
    worker dies again."""
    poison = await submit(db_url, "tests.helpers.poison:kill_async")
    zygote = Zygote(tmp_path / "logs")
    # Concurrency 1: a dying worker holds the poison document and nothing else in flight
    # (an outcome of its previous document may still be waiting to be recorded).
    settings = {**SETTINGS, "concurrency": 1}
    workers = [zygote.start(db_url, ["b"], **settings) for _ in range(2)]
    deaths = 0
    deadline = time.monotonic() + 90
    try:
        while not all(w.returncode == 0 for w in workers):
            assert time.monotonic() < deadline, "the batch did not finish"
            for i, worker in enumerate(workers):
                code = worker.returncode
                if code is None or code == 0:
                    continue
                assert code == -9, worker.output()[-3000:]
                deaths += 1
                # Bounded: more deaths than attempts means the poison was claimed again.
                assert deaths <= MAX_ATTEMPTS, f"{deaths} deaths for {MAX_ATTEMPTS} attempts"
                if not batch_complete(sync_url, "b"):
                    workers[i] = zygote.start(db_url, ["b"], **settings)
                else:
                    workers[i] = workers[1 - i]
            await asyncio.sleep(0.02)
    finally:
        zygote.close()
    assert deaths == MAX_ATTEMPTS
    status, code, attempts = sql(
        sync_url, "SELECT status, error_code, attempts FROM documents WHERE id = :p", p=poison
    )[0]
    assert (status, code, attempts) == ("failed", "lease_expired", MAX_ATTEMPTS)
    outcomes = sql(
        sync_url, "SELECT outcome FROM attempts WHERE document_id = :p ORDER BY id", p=poison
    )
    assert [o for (o,) in outcomes] == ["lease_expired"] * MAX_ATTEMPTS
    assert_rest_done_once(sync_url, poison)
    assert_counters_match(sync_url)
    assert_sqlite_intact(sync_url)


@pytest.mark.slow
async def test_poison_kills_the_pool_child_each_time(
    db_url: str, sync_url: str, tmp_path: Path
) -> None:
    """Sync processor: it runs in the worker's process pool, so each attempt kills a pool
    child; the worker survives, records ``worker_crashed`` and gives up after max_attempts."""
    poison = await submit(db_url, "tests.helpers.poison:kill_sync")
    zygote = Zygote(tmp_path / "logs")
    try:
        worker = zygote.start(db_url, ["b"], concurrency=4, **SETTINGS)
        await wait_for(lambda: not worker.alive(), timeout=120, what="the worker to finish")
        assert worker.returncode == 0, worker.output()[-3000:]
    finally:
        zygote.close()
    status, code, attempts = sql(
        sync_url, "SELECT status, error_code, attempts FROM documents WHERE id = :p", p=poison
    )[0]
    assert (status, code, attempts) == ("failed", "worker_crashed", MAX_ATTEMPTS)
    outcomes = sql(
        sync_url,
        "SELECT outcome, error_code FROM attempts WHERE document_id = :p ORDER BY id",
        p=poison,
    )
    expected = [("retry", "worker_crashed")] * (MAX_ATTEMPTS - 1) + [("failed", "worker_crashed")]
    assert [tuple(r) for r in outcomes] == expected
    assert_rest_done_once(sync_url, poison)
    assert worker.stats()["failed"] == 1
    assert_counters_match(sync_url)
    assert_sqlite_intact(sync_url)
