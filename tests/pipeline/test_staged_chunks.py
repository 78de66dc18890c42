"""Staged chunks: fenced by the lease, attached by the finish in one step, and never left
behind by an abandoned attempt (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import msgspec
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.artifacts import ChunkRow, ChunkSpool, IndexArtifacts
from ledger.index import staged_chunks
from ledger.model import BatchSpec, ClaimedDocument, Outcome, SourceSpec
from ledger.states import DocumentStatus
from ledger.worker import outcome_prep
from tests.conftest import FakeClock, sql

SHA = "ab" * 32


def _rows(start: int, stop: int) -> list[ChunkRow]:
    return [
        ChunkRow(ordinal=i, text=f"chunk {i} of the staged text", char_start=i, char_end=i + 1,
                 page=None)
        for i in range(start, stop)
    ]  # fmt: skip


async def _stage(
    ledger: Ledger, doc: ClaimedDocument, rows: list[ChunkRow], *, first: bool, token: str = ""
) -> bool:
    async def work(conn: AsyncConnection, now: datetime) -> bool:
        return await staged_chunks.stage_block(
            conn,
            document_id=doc.id,
            lease_token=token or doc.lease_token,
            rows=rows,
            first=first,
        )

    return await ledger.runner.run(work)


def _staged_outcome(doc: ClaimedDocument, count: int) -> Outcome:
    artifacts = IndexArtifacts(
        sha256=SHA, size=10, spool=ChunkSpool("spool-file", count, SHA), supersede=True
    )
    return Outcome.done(doc, {"chunks": count}, artifacts)


async def test_staging_is_fenced_and_an_abandoned_attempt_leaves_nothing(
    ledger: Ledger, sync_url: str, clock: FakeClock
) -> None:
    await ledger.queue.submit(BatchSpec(id="s", processor="noop"), [SourceSpec("/data/a.txt")])
    worker = await ledger.workers.register(concurrency=1)
    [first] = await ledger.queue.claim(worker, 1)
    assert await _stage(ledger, first, _rows(0, 2), first=True)
    # A token that does not hold the document stages nothing.
    assert not await _stage(ledger, first, _rows(2, 3), first=False, token="f" * 32)
    assert sql(sync_url, "SELECT count(*) FROM staged_chunks") == [(2,)]
    # The worker is killed: its lease runs out and the rescue drops what it staged.
    clock.advance(31)
    assert await ledger.queue.rescue_expired() == 1
    assert sql(sync_url, "SELECT count(*) FROM staged_chunks") == [(0,)]
    # The killed worker wakes up late: it can stage nothing more, nor finish.
    assert not await _stage(ledger, first, _rows(2, 3), first=False)
    [second] = await ledger.queue.claim(worker, 1)
    assert second.id == first.id and second.lease_token != first.lease_token
    late = await ledger.queue.complete(worker, [_staged_outcome(first, 3)])
    assert late.lost == [first.id]
    # The next attempt stages in two blocks (a retried first block replaces its own rows).
    assert await _stage(ledger, second, _rows(0, 2), first=True)
    assert await _stage(ledger, second, _rows(0, 2), first=True)
    assert await _stage(ledger, second, _rows(2, 3), first=False)
    assert sql(sync_url, "SELECT count(*) FROM chunks") == [(0,)]  # invisible until the finish
    result = await ledger.queue.complete(worker, [_staged_outcome(second, 3)])
    assert result.statuses == {second.id: DocumentStatus.DONE}
    assert sql(sync_url, "SELECT ordinal FROM chunks ORDER BY ordinal") == [(0,), (1,), (2,)]
    assert sql(sync_url, "SELECT count(*) FROM staged_chunks") == [(0,)]
    assert [h.document_id for h in await ledger.index.search("staged", 5)] == [second.id] * 3


async def test_the_finish_refuses_staged_chunks_short_of_the_count(
    ledger: Ledger, sync_url: str
) -> None:
    await ledger.queue.submit(BatchSpec(id="s", processor="noop"), [SourceSpec("/data/a.txt")])
    worker = await ledger.workers.register(concurrency=1)
    [doc] = await ledger.queue.claim(worker, 1)
    assert await _stage(ledger, doc, _rows(0, 2), first=True)
    with pytest.raises(staged_chunks.ChunksIncomplete):
        await ledger.queue.complete(worker, [_staged_outcome(doc, 3)])
    # Nothing of that transaction stayed: the document still runs, nothing is indexed.
    assert sql(sync_url, "SELECT status FROM documents") == [("running",)]
    assert sql(sync_url, "SELECT count(*) FROM chunks") == [(0,)]
    assert sql(sync_url, "SELECT count(*) FROM staged_chunks") == [(2,)]
    # The worker then records the failure; what the attempt staged goes first.
    await outcome_prep.unstage(ledger, doc, _staged_outcome(doc, 3))
    assert sql(sync_url, "SELECT count(*) FROM staged_chunks") == [(0,)]


async def test_chunks_in_the_outcome_must_be_the_whole_sequence(
    ledger: Ledger, sync_url: str
) -> None:
    await ledger.queue.submit(BatchSpec(id="s", processor="noop"), [SourceSpec("/data/a.txt")])
    worker = await ledger.workers.register(concurrency=1)
    [doc] = await ledger.queue.claim(worker, 1)
    gap = msgspec.structs.replace(_staged_outcome(doc, 3), rows=(*_rows(0, 1), *_rows(2, 3)))
    with pytest.raises(staged_chunks.ChunksIncomplete):
        await ledger.queue.complete(worker, [gap])
    whole = msgspec.structs.replace(gap, rows=tuple(_rows(0, 3)))
    result = await ledger.queue.complete(worker, [whole])
    assert result.statuses == {doc.id: DocumentStatus.DONE}
    assert sql(sync_url, "SELECT count(*) FROM chunks") == [(3,)]
