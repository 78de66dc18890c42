"""Stored uploads on a worker that cannot see the storage: a systemic, retryable error that
pauses the batch, not a failure of every document; a really missing file is not that."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import storage
from ledger.app import Ledger
from ledger.errors import RetryableError
from ledger.model import BatchSpec, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker.runtime import Worker
from tests.conftest import FakeClock, settings_for, sql


def test_check_readable_tells_unmounted_storage_from_a_missing_file(tmp_path: Path) -> None:
    store = tmp_path / "storage"
    elsewhere = str(tmp_path / "other" / "a.txt")
    storage.check_readable(elsewhere, store)  # not a stored file: not this check's business
    stored = str(store / "acme" / "b" / "a.txt")
    with pytest.raises(RetryableError) as info:
        storage.check_readable(stored, store)  # no storage folder at all on this machine
    assert info.value.code == "storage_unreachable" and info.value.systemic
    store.mkdir()
    with pytest.raises(RetryableError):
        storage.check_readable(stored, store)  # an empty mount point: no marker
    storage.prepare(store)
    storage.check_readable(stored, store)  # mounted, the file is gone: source_missing later
    Path(stored).parent.mkdir(parents=True)
    Path(stored).write_text("x")
    storage.check_readable(stored, store)


def _mount(store: Path, files: list[str]) -> None:
    storage.prepare(store)
    for name in files:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text("content")


async def test_worker_without_the_storage_pauses_the_batch_then_resumes(
    db_url: str, sync_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    store = tmp_path / "shared"
    settings = settings_for(db_url, storage_dir=str(store), breaker_window=5, max_attempts=3)
    sources = [SourceSpec(str(store / "acme" / "b" / f"f{i}.txt")) for i in range(8)]
    async with await Ledger.open(settings, clock=clock) as ledger:
        await ledger.queue.submit(BatchSpec(id="b", processor="noop"), sources)
        await Worker(ledger, concurrency=8).run(burst=True)
        batch = await ledger.reads.batch("b")
        assert batch.state == "paused"
        assert batch.pause_reason is not None and "storage_unreachable" in batch.pause_reason
        codes = sql(sync_url, "SELECT DISTINCT error_code FROM attempts")
        assert codes == [("storage_unreachable",)]
        assert sql(sync_url, "SELECT count(*) FROM documents WHERE status = 'failed'") == [(0,)]

        # The share is mounted: resume, and every document is processed.
        _mount(store, [s.source for s in sources])
        await ledger.control.resume("b")
        clock.advance(3600)  # past the retry backoff
        await Worker(ledger, concurrency=8).run(burst=True)
        assert (await ledger.reads.batch("b")).counts[DocumentStatus.DONE] == 8
    assert sql(sync_url, "SELECT status, count(*) FROM documents GROUP BY 1") == [("done", 8)]
