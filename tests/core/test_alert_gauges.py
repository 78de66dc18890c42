"""The figures alerts read at scrape time, on both backends, with the clock moved by hand."""

from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.db.models import metadata
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from tests.conftest import FakeClock


def _sources(n: int, prefix: str) -> list[SourceSpec]:
    return [SourceSpec(f"{prefix}/{i}") for i in range(n)]


async def test_unfinished_batches_report_due_age_failures_and_stall(
    ledger: Ledger, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="busy", processor="noop"), _sources(10, "/b"))
    await ledger.queue.submit(BatchSpec(id="done", processor="noop"), _sources(2, "/d"))
    await ledger.queue.submit(BatchSpec(id="held", processor="noop"), _sources(2, "/h"))
    await ledger.control.pause("held")
    worker = await ledger.workers.register(concurrency=10)
    claimed = await ledger.queue.claim(worker, 6)
    broken = ErrorInfo(code="corrupt", message="not a PDF", retryable=False)
    by_batch = {b: [d for d in claimed if d.batch_id == b] for b in ("busy", "done")}
    assert len(by_batch["done"]) == 2 and len(by_batch["busy"]) == 4  # fair share
    outcomes = [Outcome.done(d, {}) for d in by_batch["done"]]
    outcomes += [Outcome.failed(by_batch["busy"][0], broken)]
    outcomes += [Outcome.done(d, {}) for d in by_batch["busy"][1:]]
    await ledger.queue.complete(worker, outcomes)
    clock.advance(100)

    figures, _ = await ledger.reads.alert_gauges()
    # Finished and paused batches have no series: nothing there to alert on.
    assert [g.batch_id for g in figures] == ["busy"]
    (busy,) = figures
    assert busy.failed_ratio == pytest.approx(0.25)
    assert busy.oldest_due_seconds == pytest.approx(100.0)
    assert busy.seconds_since_progress == pytest.approx(100.0)

    # Only documents backing off and none running: not due, so not stalled either.
    retry = ErrorInfo(code="flaky", message="later", retryable=True)
    rest = await ledger.queue.claim(worker, 10)
    assert {d.batch_id for d in rest} == {"busy"} and len(rest) == 6
    clock.advance(5)
    await ledger.queue.complete(worker, [Outcome.failed(d, retry) for d in rest])
    (busy,) = (await ledger.reads.alert_gauges())[0]
    assert busy.oldest_due_seconds is None and busy.seconds_since_progress is None
    assert busy.failed_ratio == pytest.approx(0.25)  # retries are not failures


async def test_the_batch_limit_bounds_the_series(ledger: Ledger) -> None:
    for i in range(5):
        await ledger.queue.submit(BatchSpec(id=f"b{i}", processor="noop"), _sources(1, f"/{i}"))
    figures, _ = await ledger.reads.alert_gauges(limit=3)
    assert [g.batch_id for g in figures] == ["b0", "b1", "b2"]  # oldest first


async def test_table_rows_cover_every_table(ledger: Ledger, db_url: str) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), _sources(7, "/t"))
    _, tables = await ledger.reads.alert_gauges()
    assert set(tables) == set(metadata.tables)
    assert all(count >= 0 for count in tables.values())
    if db_url.startswith("sqlite"):  # exact counts; PostgreSQL's are estimates
        assert tables["documents"] == 7 and tables["batches"] == 1
