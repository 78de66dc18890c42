"""``ledger.queue.submit_preview``: the submission ``submit`` would make, rolled back, on both
backends. ``ledger ingest --dry-run`` stands on it, so it must agree with ``submit`` and
leave nothing behind."""

from __future__ import annotations

import pytest

from ledger.app import Ledger
from ledger.errors import Conflict, NotFound
from ledger.model import BatchSpec, Outcome, SourceSpec
from tests.conftest import sql


def _snapshot(url: str) -> list[object]:
    """Every row a submission may write or change."""
    return [
        sql(url, "SELECT id, updated_at, completed_at FROM batches ORDER BY id"),
        sql(url, "SELECT id, source, status, source_size, attempts FROM documents ORDER BY id"),
        sql(url, "SELECT count(*) FROM events"),
    ]


async def test_preview_agrees_with_submit_and_writes_nothing(ledger: Ledger, sync_url: str) -> None:
    spec = BatchSpec(id="b", processor="noop")
    await ledger.queue.submit(
        spec, [SourceSpec("/a", size=1, mtime_ns=1), SourceSpec("/b", size=1)]
    )
    worker = await ledger.workers.register(concurrency=2)
    await ledger.queue.complete(
        worker, [Outcome.done(d, {}) for d in await ledger.queue.claim(worker, 2)]
    )
    again = [
        SourceSpec("/a", size=2, mtime_ns=2),  # changed since it was done
        SourceSpec("/b", size=1),
        SourceSpec("/c", size=1),
    ]
    before = _snapshot(sync_url)

    preview = await ledger.queue.submit_preview(spec, list(again))
    assert (preview.created, preview.added, preview.known, preview.requeued) == (False, 1, 2, 1)
    assert _snapshot(sync_url) == before
    assert (await ledger.reads.batch("b")).total == 2

    real = await ledger.queue.submit(spec, list(again))
    assert (real.created, real.added, real.known, real.requeued, real.skipped) == (
        preview.created,
        preview.added,
        preview.known,
        preview.requeued,
        preview.skipped,
    )
    assert real.batch.total == preview.batch.total == 3


async def test_preview_of_a_new_batch_leaves_no_batch(ledger: Ledger, sync_url: str) -> None:
    preview = await ledger.queue.submit_preview(
        BatchSpec(id="fresh", processor="noop"), [SourceSpec("/x")]
    )
    assert (preview.created, preview.added) == (True, 1)
    with pytest.raises(NotFound):
        await ledger.reads.batch("fresh")
    assert sql(sync_url, "SELECT count(*) FROM documents")[0][0] == 0


async def test_preview_refuses_what_submit_refuses(ledger: Ledger) -> None:
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop", max_attempts=2), [SourceSpec("/a")]
    )
    with pytest.raises(Conflict):
        await ledger.queue.submit_preview(
            BatchSpec(id="b", processor="noop", max_attempts=5), [SourceSpec("/a")]
        )
