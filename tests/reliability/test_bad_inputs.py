"""Hostile and broken files mixed with good ones, through the real ``ingest`` processor in a
worker subprocess: good ones done, every bad one failed with its expected code, nothing left
running, and the worker's process tree stays within a memory bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql
from tests.ingest.fixtures import excluded_type, make_bad_corpus, make_good_corpus
from tests.reliability.support import (
    HAS_INGEST,
    NO_INGEST,
    RssSampler,
    assert_counters_match,
    assert_sqlite_intact,
    start_worker,
    wait_for,
)

GiB = 2**30
MEMORY_LIMIT_MB = 1024  # per pool child; what make_bad_corpus' expectations assume
PEAK_RSS_BOUND = 3 * GiB  # worker + two children at their limit, with room for the parent


@pytest.mark.slow
@pytest.mark.skipif(not HAS_INGEST, reason=NO_INGEST)
async def test_bad_inputs_through_the_ingest_processor(sqlite_url: str, tmp_path: Path) -> None:
    good = make_good_corpus(tmp_path / "good", 60)
    bad = make_bad_corpus(tmp_path / "bad", include_huge=False)
    assert len([c for c in bad.values() if c is not None]) >= 25
    sources = sorted([*good, *bad])
    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        spec = BatchSpec(id="mixed", processor="ingest", max_attempts=2)
        await ledger.queue.submit(spec, [SourceSpec(s) for s in sources])
    sync_url = sqlite_url.replace("sqlite+aiosqlite", "sqlite")
    worker = start_worker(
        sqlite_url,
        ["mixed"],
        tmp_path / "logs",
        env={"LEDGER_HOME": str(tmp_path / "home")},
        concurrency=4,
        process_workers=2,
        task_memory_limit_mb=MEMORY_LIMIT_MB,
        task_timeout_seconds=60,
        backoff_base_seconds=0.05,
    )
    async with RssSampler() as rss:
        rss.watch(worker.pid)
        await wait_for(lambda: not worker.alive(), timeout=240, what="the worker to finish")
    assert worker.returncode == 0, worker.output()[-3000:]

    rows = {
        source: (status, code)
        for source, status, code in sql(
            sync_url, "SELECT source, status, error_code FROM documents"
        )
    }
    wrong: dict[str, tuple[object, str | None]] = {}
    for source in good:
        if rows[source] != ("done", None):
            wrong[source] = (rows[source], "done")
    for source, expected in bad.items():
        status, code = rows[source]
        if excluded_type(source):  # not a document (an image, an archive): skipped
            if rows[source] != ("skipped", None):
                wrong[source] = (rows[source], "skipped")
            continue
        ok = (
            status in ("done", "skipped")
            if expected is None
            else (status, code)
            == (
                "failed",
                expected,
            )
        )
        if not ok:
            wrong[source] = (rows[source], expected)
    assert wrong == {}
    assert (
        sql(sync_url, "SELECT count(*) FROM documents WHERE status IN ('running', 'pending')")[0][0]
        == 0
    )
    assert_counters_match(sync_url)
    assert_sqlite_intact(sync_url)
    print(
        f"\nbad inputs: {len(sources)} documents; worker tree peak RSS {rss.peak / 2**20:.0f} MiB"
    )
    assert 0 < rss.peak < PEAK_RSS_BOUND
