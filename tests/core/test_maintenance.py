"""Maintenance on both backends: retention with the clock moved forward, one runner at a
time, upload cleanup, lease rescue and the record of each run."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ledger import storage
from ledger.app import Ledger
from ledger.maintenance import run as maintenance
from ledger.maintenance.uploads import clean_uploads
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec, UploadSpec
from ledger.queue import retention
from ledger.states import DocumentStatus
from tests.conftest import FakeClock, _postgres_database, postgres_available, settings_for, sql

REPO = Path(__file__).resolve().parents[2]

S = DocumentStatus
DAY = 86_400.0


def _sources(n: int, prefix: str) -> list[SourceSpec]:
    return [SourceSpec(f"{prefix}/{i}") for i in range(n)]


def _flaky() -> ErrorInfo:
    return ErrorInfo(code="flaky", message="flaky happened", retryable=True)


async def _finish_batch_with_a_failure(ledger: Ledger, clock: FakeClock) -> None:
    """Batch 'old': 8 documents, one failed after 3 attempts, one done on its second."""
    await ledger.queue.submit(
        BatchSpec(id="old", processor="noop", max_attempts=3), _sources(8, "/o")
    )
    worker = await ledger.workers.register(concurrency=8)
    docs = await ledger.queue.claim(worker, 8)
    flaky, once, rest = docs[0], docs[1], docs[2:]
    await ledger.queue.complete(
        worker,
        [Outcome.failed(flaky, _flaky()), Outcome.failed(once, _flaky())]
        + [Outcome.done(d, {"n": 1}) for d in rest],
    )
    for _ in range(2):
        clock.advance(60)
        again = await ledger.queue.claim(worker, 8)
        outcomes = [
            Outcome.failed(d, _flaky()) if d.id == flaky.id else Outcome.done(d, {}) for d in again
        ]
        await ledger.queue.complete(worker, outcomes)
    assert (await ledger.reads.batch("old")).complete
    await ledger.workers.stopped(worker)


async def _half_done(ledger: Ledger, clock: FakeClock) -> None:
    """Batch 'live': 10 documents, 5 done, still being worked on."""
    await ledger.queue.submit(BatchSpec(id="live", processor="noop"), _sources(10, "/l"))
    worker = await ledger.workers.register(concurrency=5)
    docs = await ledger.queue.claim(worker, 5)
    clock.advance(5)
    await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in docs])


def _rows(url: str, table: str, batch: str | None = None) -> int:
    where = "" if batch is None else f" WHERE batch_id = '{batch}'"
    return int(sql(url, f"SELECT count(*) FROM {table}{where}")[0][0])


async def _figures(ledger: Ledger, batch_id: str) -> tuple[Any, ...]:
    progress = await ledger.reads.progress(batch_id)
    throughput = await ledger.reads.throughput(batch_id)
    return (
        progress.batch.counts,
        progress.percent,
        progress.rate,
        progress.eta_seconds,
        progress.last_finished_at,
        throughput,
        await ledger.reads.failures(batch_id),
    )


async def test_retention_prunes_finished_history_and_keeps_what_matters(
    ledger: Ledger, clock: FakeClock, sync_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "STEP_ROWS", 3)  # many small transactions
    await _finish_batch_with_a_failure(ledger, clock)
    idle = await ledger.workers.register(concurrency=1)
    await ledger.workers.stopped(idle)
    clock.advance(20 * DAY)
    await _half_done(ledger, clock)
    clock.advance(11 * DAY)  # 'old' finished 31 days ago, 'live' is 11 days old

    before = {t: (_rows(sync_url, t, "old"), _rows(sync_url, t, "live")) for t in ("events",)}
    before["attempts"] = (_rows(sync_url, "attempts", "old"), _rows(sync_url, "attempts", "live"))
    assert before["events"][0] > 3 and before["attempts"][0] == 8 + 2 + 1
    documents = _rows(sync_url, "documents")
    old_figures = await _figures(ledger, "old")
    live_figures = await _figures(ledger, "live")
    old_doc_attempts = sql(sync_url, "SELECT id, attempts, status FROM documents ORDER BY id")

    run = await maintenance.run_once(ledger, runner="test")

    assert run is not None and run.error is None and run.finished_at is not None
    assert run.counts["events_pruned"] == before["events"][0]
    assert run.counts["attempts_pruned"] == before["attempts"][0] - 1
    assert run.counts["workers_pruned"] == 1  # the idle one; the others are named by attempts
    assert _rows(sync_url, "events", "old") == 0
    # The failed document's last attempt stays: it says why the document failed.
    kept = sql(sync_url, "SELECT attempt, outcome, error_code FROM attempts WHERE batch_id='old'")
    assert kept == [(3, "failed", "flaky")]
    # The batch still being worked on keeps all of its history.
    assert _rows(sync_url, "events", "live") == before["events"][1]
    assert _rows(sync_url, "attempts", "live") == before["attempts"][1]
    # Documents, counters and every progress figure are as they were.
    assert _rows(sync_url, "documents") == documents
    assert sql(sync_url, "SELECT id, attempts, status FROM documents ORDER BY id") == (
        old_doc_attempts
    )
    old_after = await _figures(ledger, "old")
    assert old_after[:5] == old_figures[:5] and old_after[6] == old_figures[6]
    assert await _figures(ledger, "live") == live_figures
    assert sql(sync_url, "SELECT count(*) FROM workers WHERE id = :w", w=idle) == [(0,)]

    again = await maintenance.run_once(ledger, runner="test")
    assert again is not None
    assert again.counts["events_pruned"] == again.counts["attempts_pruned"] == 0


async def test_retention_off_keeps_everything(db_url: str, clock: FakeClock, sync_url: str) -> None:
    led = await Ledger.open(settings_for(db_url, retention_days=None), clock=clock)
    try:
        await _finish_batch_with_a_failure(led, clock)
        clock.advance(400 * DAY)
        tables = ("events", "attempts", "workers", "documents")
        before = {t: _rows(sync_url, t) for t in tables}
        run = await maintenance.run_once(led, runner="test")
        assert run is not None and "events_pruned" not in run.counts
        assert {t: _rows(sync_url, t) for t in tables} == before
    finally:
        await led.close()


async def test_batches_finished_recently_keep_their_history(
    ledger: Ledger, clock: FakeClock, sync_url: str
) -> None:
    await _finish_batch_with_a_failure(ledger, clock)
    clock.advance(29 * DAY)
    events = _rows(sync_url, "events")
    run = await maintenance.run_once(ledger, runner="test")
    assert run is not None and run.counts["events_pruned"] == 0
    assert _rows(sync_url, "events") == events


async def test_two_runners_at_once_only_one_runs(
    ledger: Ledger, db_url: str, clock: FakeClock, sync_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await Ledger.open(settings_for(db_url), clock=clock) as second:
        await _race(ledger, second, sync_url, monkeypatch)


async def _race(
    ledger: Ledger, second: Ledger, sync_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = asyncio.Event()
    go_on = asyncio.Event()
    real = clean_uploads

    async def slow_clean(led: Ledger) -> tuple[int, int]:
        inside.set()
        await go_on.wait()
        return await real(led)

    monkeypatch.setattr("ledger.maintenance.run.clean_uploads", slow_clean)
    first = asyncio.create_task(maintenance.run_once(ledger, runner="first"))
    await asyncio.wait_for(inside.wait(), 30)
    # The first is mid-pass: the second skips its turn, twice, and records nothing.
    assert await maintenance.run_once(second, runner="second") is None
    assert await maintenance.run_once(second, runner="second") is None
    go_on.set()
    done = await asyncio.wait_for(first, 30)
    assert done is not None and done.runner == "first"
    assert sql(sync_url, "SELECT runner FROM maintenance_runs") == [("first",)]
    # Free again: the second one runs now.
    later = await maintenance.run_once(second, runner="second")
    assert later is not None and later.runner == "second"


async def test_a_dead_runners_sqlite_lease_is_taken_over_when_it_expires(
    sqlite_url: str, clock: FakeClock
) -> None:
    led = await Ledger.open(settings_for(sqlite_url), clock=clock)
    try:

        async def transact(work: Any) -> bool:
            result: bool = await led.runner.run(work)
            return result

        lock = led.runner.backend.leadership(
            led.engine, transact, owner="dead", lease=maintenance.LEASE
        )
        held = await lock.__aenter__()  # taken, and never released: its process "died"
        assert held is not None
        assert await maintenance.run_once(led, runner="alive") is None
        clock.advance(maintenance.LEASE.total_seconds() + 1)
        run = await maintenance.run_once(led, runner="alive")
        assert run is not None and run.runner == "alive"
        assert not await held.renew()  # the dead runner's lease is gone
    finally:
        await led.close()


async def _expiring_upload(led: Ledger, clock: FakeClock, folder: Path) -> Path:
    upload = await led.uploads.create(
        UploadSpec(batch_id="up", length=100, owner="acme", filename="f.txt"), folder=folder
    )
    path = Path(upload.path)
    path.write_bytes(b"x" * 10)  # noqa: ASYNC240
    clock.advance(led.settings.tus_expiry_seconds + 1)
    return path


async def test_expired_uploads_are_expired_and_their_files_removed(
    db_url: str, clock: FakeClock, sync_url: str, tmp_path: Path
) -> None:
    storage.prepare(tmp_path)
    async with await Ledger.open(settings_for(db_url, storage_dir=tmp_path), clock=clock) as led:
        path = await _expiring_upload(led, clock, tmp_path)
        run = await maintenance.run_once(led, runner="test")
        assert run is not None
        assert run.counts["uploads_expired"] == 1 and run.counts["upload_files_removed"] == 1
        assert not path.exists()
        assert sql(sync_url, "SELECT state FROM uploads") == [("expired",)]
        # Its row goes once it ended longer ago than the retention.
        clock.advance(31 * DAY)
        run = await maintenance.run_once(led, runner="test")
        assert run is not None and run.counts["upload_rows_pruned"] == 1
        assert _rows(sync_url, "uploads") == 0


async def test_a_runner_without_the_storage_folder_leaves_upload_files_alone(
    db_url: str, clock: FakeClock, sync_url: str, tmp_path: Path
) -> None:
    # A worker on a machine where the shared storage is not mounted: no marker file.
    elsewhere = tmp_path / "not-mounted"
    async with await Ledger.open(settings_for(db_url, storage_dir=elsewhere), clock=clock) as led:
        path = await _expiring_upload(led, clock, tmp_path)
        run = await maintenance.run_once(led, runner="test")
        assert run is not None
        assert run.counts["uploads_expired"] == 1 and run.counts["upload_files_removed"] == 0
        assert path.exists()
        # Not recorded as removed: a runner that sees the storage removes it later.
        assert sql(sync_url, "SELECT files_removed_at FROM uploads") == [(None,)]


async def test_the_pass_rescues_expired_leases(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), _sources(4, "/r"))
    worker = await ledger.workers.register(concurrency=4)
    assert len(await ledger.queue.claim(worker, 4)) == 4
    clock.advance(ledger.settings.lease_seconds + 1)
    run = await maintenance.run_once(ledger, runner="test")
    assert run is not None and run.counts["leases_rescued"] == 4
    assert (await ledger.reads.batch("b")).counts[S.PENDING] == 4


async def test_only_the_last_runs_are_kept(db_url: str, clock: FakeClock, sync_url: str) -> None:
    led = await Ledger.open(settings_for(db_url, maintenance_runs_kept=3), clock=clock)
    try:
        ids = []
        for _ in range(5):
            run = await maintenance.run_once(led, runner="test")
            assert run is not None
            ids.append(run.id)
            clock.advance(60)
        assert [r.id for r in await maintenance.last_runs(led, limit=10)] == ids[:1:-1]
        assert _rows(sync_url, "maintenance_runs") == 3
        assert run is not None and run.counts["runs_trimmed"] == 1
    finally:
        await led.close()


def test_retention_setting_reads_off_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from ledger.settings import Settings

    monkeypatch.setenv("LEDGER_RETENTION_DAYS", "off")
    assert Settings().retention_days is None
    monkeypatch.setenv("LEDGER_RETENTION_DAYS", "7")
    assert Settings().retention_days == 7
    monkeypatch.setenv("LEDGER_RETENTION_DAYS", "0")
    with pytest.raises(ValidationError):
        Settings()


async def test_sqlite_is_optimised_and_its_log_cut_back_on_schedule(
    sqlite_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    wal = tmp_path / "ledger.db-wal"
    async with await Ledger.open(settings_for(sqlite_url), clock=clock) as led:
        await led.queue.submit(BatchSpec(id="big", processor="noop"), _sources(20_000, "/w" * 40))
        before = wal.stat().st_size
        assert before > 1_000_000
        run = await maintenance.run_once(led, runner="test")
        assert run is not None and run.counts["sqlite_optimized"] == 1
        # Checkpointed and truncated; only the run's own record was written after.
        assert wal.stat().st_size < 100_000
        again = await maintenance.run_once(led, runner="test")
        assert again is not None and again.counts["sqlite_optimized"] == 0  # not due yet
        clock.advance(led.settings.sqlite_optimize_seconds)
        later = await maintenance.run_once(led, runner="test")
        assert later is not None and later.counts["sqlite_optimized"] == 1


async def test_the_log_is_cut_back_once_a_reader_lets_it_go(
    sqlite_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    """A reader on the log (or the engine's own checkpoint round) makes the TRUNCATE report
    "busy" in its result: the upkeep tries again instead of counting a log it did not cut."""
    wal = tmp_path / "ledger.db-wal"
    async with await Ledger.open(settings_for(sqlite_url), clock=clock) as led:
        tries: list[str] = []
        retried = asyncio.Event()
        loop = asyncio.get_running_loop()

        def trace(dbapi_connection: Any, _record: Any) -> None:
            def seen(statement: str) -> None:
                if "wal_checkpoint(TRUNCATE)" in statement:
                    tries.append(statement)
                    if len(tries) == 2:
                        loop.call_soon_threadsafe(retried.set)

            dbapi_connection._connection._conn.set_trace_callback(seen)

        # A reader whose snapshot is older than the submit: no checkpoint may copy the
        # submit's pages over the ones it still reads, so the log stays in use until it ends.
        reader = sqlite3.connect(tmp_path / "ledger.db")
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM batches").fetchone()
        await led.queue.submit(BatchSpec(id="big", processor="noop"), _sources(5_000, "/w" * 40))
        assert wal.stat().st_size > 1_000_000
        engine = led.runner.engine
        event.listen(engine.sync_engine, "connect", trace)
        await engine.dispose()  # the upkeep's connection is a new one, traced
        upkeep = asyncio.create_task(led.runner.backend.upkeep(engine))
        waiting = asyncio.create_task(retried.wait())
        await asyncio.wait({upkeep, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert retried.is_set(), "the busy TRUNCATE was not tried again"
        reader.rollback()
        reader.close()
        assert await upkeep is True
        assert wal.stat().st_size == 0


async def _runs_once_the_lock_is_free(url: str, clock: FakeClock, holder: Any) -> None:
    async with await Ledger.open(settings_for(url), clock=clock) as led:
        assert await maintenance.run_once(led, runner="next") is None
        holder.kill()  # SIGKILL: nothing is released by the holder itself
        await asyncio.to_thread(holder.wait, 30)
        # The server ends the session and its advisory lock with it: no lease to wait out.
        deadline = time.monotonic() + 60
        run = None
        while run is None and time.monotonic() < deadline:
            run = await maintenance.run_once(led, runner="next")
            if run is None:
                await asyncio.sleep(0.1)
        assert run is not None and run.runner == "next"


@pytest.mark.postgres
def test_a_killed_runner_frees_the_postgres_lock_at_once(clock: FakeClock) -> None:
    error = postgres_available()
    if error:
        pytest.skip(f"PostgreSQL server not reachable: {error}")
    url = _postgres_database()
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.maintenance_holder", url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        asyncio.run(_runs_once_the_lock_is_free(url, clock, holder))
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


async def test_a_cancelled_pass_records_what_it_did_and_frees_the_lock(
    ledger: Ledger, sync_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = asyncio.Event()

    async def stuck(led: Ledger) -> tuple[int, int]:
        inside.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr("ledger.maintenance.run.clean_uploads", stuck)
    task = asyncio.create_task(maintenance.run_once(ledger, runner="stopping"))
    await asyncio.wait_for(inside.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await maintenance.last_runs(ledger, limit=5)
    assert run.runner == "stopping" and run.finished_at is not None
    assert run.error is not None and "stopped" in run.error
    assert run.counts["leases_rescued"] == 0  # the step before it is recorded
    monkeypatch.undo()
    assert await maintenance.run_once(ledger, runner="next") is not None  # lock released
