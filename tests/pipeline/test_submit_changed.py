"""Resubmitting a batch whose sources changed: the core's side, status by status."""

from __future__ import annotations

from ledger.app import Ledger
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from ledger.states import DocumentStatus as S

SPEC = BatchSpec(id="b", processor="noop")


def spec(name: str, size: int, mtime: int = 1, sha: str | None = None) -> SourceSpec:
    return SourceSpec(f"/d/{name}", size=size, mtime_ns=mtime, sha256=sha)


async def test_changed_sources_go_back_to_pending_by_status(ledger: Ledger) -> None:
    names = ["done", "skipped", "failed", "running", "pending", "same"]
    await ledger.queue.submit(SPEC, [spec(n, 10) for n in names])
    worker = await ledger.workers.register(concurrency=5)
    docs = {d.source.rsplit("/", 1)[1]: d for d in await ledger.queue.claim(worker, 4)}
    error = ErrorInfo(code="corrupt", message="bad", retryable=False)
    await ledger.queue.complete(
        worker,
        [
            Outcome.done(docs["done"], {"chunks": 1}),
            Outcome.skipped(docs["skipped"], {"reason": "dup"}),
            Outcome.failed(docs["failed"], error),
        ],
    )  # "running" stays leased; "pending" and "same" were never claimed
    result = await ledger.queue.submit(
        SPEC,
        [spec("done", 11), spec("skipped", 10, mtime=2), spec("failed", 12),
         spec("running", 12), spec("pending", 13), spec("same", 10), spec("new", 1)],
    )  # fmt: skip
    assert (result.added, result.known, result.requeued) == (1, 6, 3)
    counts = result.batch.counts
    assert counts[S.PENDING] == 6 and counts[S.RUNNING] == 1 and counts[S.DONE] == 0
    assert result.batch.completed_at is None
    page = await ledger.reads.documents("b")
    by_name = {d.source.rsplit("/", 1)[1]: d for d in page.items}
    for name in ("done", "skipped", "failed"):
        doc = by_name[name]
        assert doc.status is S.PENDING and doc.attempts == 0 and doc.error_code is None
        assert doc.finished_at is None
    assert by_name["done"].size == 11
    assert by_name["failed"].size == 12
    assert by_name["running"].status is S.RUNNING and by_name["running"].size == 10
    assert by_name["pending"].status is S.PENDING and by_name["pending"].size == 13
    assert by_name["same"].size == 10
    events = [e for e in await ledger.reads.events("b") if e.kind == "documents_requeued"]
    assert [e.data for e in events] == [{"documents": 3}]


async def test_unchanged_resubmission_changes_nothing(ledger: Ledger) -> None:
    await ledger.queue.submit(SPEC, [spec("x", 10), SourceSpec("/d/unknown")])
    worker = await ledger.workers.register(concurrency=2)
    claimed = await ledger.queue.claim(worker, 2)
    await ledger.queue.complete(worker, [Outcome.done(d, {}) for d in claimed])
    # Same facts, and facts where none were recorded: not a change.
    result = await ledger.queue.submit(SPEC, [spec("x", 10), SourceSpec("/d/unknown", size=5)])
    assert result.requeued == 0 and result.batch.counts[S.DONE] == 2
    assert result.batch.completed_at is not None
