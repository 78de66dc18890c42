"""A claimed group's dedup facts: one read, scoped to each document's owner (on SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.artifacts import ChunkRow, ChunkSpool, DocumentFacts, IndexArtifacts
from ledger.index import dedup_facts
from ledger.model import BatchSpec, ClaimedDocument, Outcome, SourceSpec

SHA = "cd" * 32


async def _facts(ledger: Ledger, docs: list[ClaimedDocument]) -> dict[int, DocumentFacts]:
    async def read(conn: AsyncConnection, now: datetime) -> dict[int, DocumentFacts]:
        return await dedup_facts.read_facts(conn, docs)

    return await ledger.runner.run(read, write=False)


async def test_facts_name_the_holders_of_source_and_content_per_owner(ledger: Ledger) -> None:
    await ledger.queue.submit(
        BatchSpec(id="first", processor="ingest", owner="alice"),
        [SourceSpec("/data/a.txt", size=5, mtime_ns=7)],
    )
    worker = await ledger.workers.register(concurrency=4)
    [held] = await ledger.queue.claim(worker, 1)
    artifacts = IndexArtifacts(
        sha256=SHA, size=5, mtime_ns=7, spool=ChunkSpool("spool", 1, SHA), supersede=True
    )
    row = ChunkRow(ordinal=0, text="alpha", char_start=0, char_end=5, page=None)
    outcome = Outcome.done(held, {"chunks": 1}, artifacts)
    done = await ledger.queue.complete(worker, [msgspec.structs.replace(outcome, rows=(row,))])
    assert done.recorded == [held.id]

    await ledger.queue.submit(
        BatchSpec(id="again", processor="ingest", owner="alice"),
        [SourceSpec("/data/a.txt", size=5, mtime_ns=8), SourceSpec("/data/copy.txt", sha256=SHA)],
    )
    await ledger.queue.submit(
        BatchSpec(id="bob", processor="ingest", owner="bob"),
        [SourceSpec("/data/a.txt", size=5, mtime_ns=7), SourceSpec("/data/b.txt", sha256=SHA)],
    )
    group: list[ClaimedDocument] = []
    for _ in range(4):  # a claim may lease from one batch at a time
        group += await ledger.queue.claim(worker, 4 - len(group))
    by_source = {(d.batch_id, d.source): d for d in group}
    assert len(by_source) == 4
    facts = await _facts(ledger, [*group, held])
    same = facts[by_source["again", "/data/a.txt"].id]
    [holder] = same.source_holders
    assert (holder.id, holder.size, holder.mtime_ns, holder.sha256) == (held.id, 5, 7, SHA)
    assert same.source_holder(None) == holder and same.source_holder("model-x") is None
    copy = facts[by_source["again", "/data/copy.txt"].id]
    assert copy.source_holders == () and copy.content_holder(SHA, None) == holder
    # Another tenant's index is not theirs to dedup against.
    for key in (("bob", "/data/a.txt"), ("bob", "/data/b.txt")):
        assert facts[by_source[key].id] == DocumentFacts()
    # A document is never its own holder.
    assert facts[held.id] == DocumentFacts()


async def test_documents_of_no_owner_hold_for_each_other_only(ledger: Ledger) -> None:
    await ledger.queue.submit(
        BatchSpec(id="first", processor="ingest"), [SourceSpec("/data/a.txt", sha256=SHA)]
    )
    worker = await ledger.workers.register(concurrency=4)
    [held] = await ledger.queue.claim(worker, 1)
    artifacts = IndexArtifacts(
        sha256=SHA, size=5, mtime_ns=7, spool=ChunkSpool("spool", 1, SHA), supersede=True
    )
    row = ChunkRow(ordinal=0, text="alpha", char_start=0, char_end=5, page=None)
    outcome = Outcome.done(held, {"chunks": 1}, artifacts)
    done = await ledger.queue.complete(worker, [msgspec.structs.replace(outcome, rows=(row,))])
    assert done.recorded == [held.id]

    await ledger.queue.submit(
        BatchSpec(id="again", processor="ingest"), [SourceSpec("/data/copy.txt", sha256=SHA)]
    )
    await ledger.queue.submit(
        BatchSpec(id="alice", processor="ingest", owner="alice"),
        [SourceSpec("/data/a.txt", sha256=SHA)],
    )
    group: list[ClaimedDocument] = []
    for _ in range(2):  # a claim may lease from one batch at a time
        group += await ledger.queue.claim(worker, 2 - len(group))
    by_batch = {d.batch_id: d for d in group}
    assert set(by_batch) == {"again", "alice"}
    # Both owner conditions (none, a named owner) in one read.
    facts = await _facts(ledger, group)
    [holder] = facts[by_batch["again"].id].content_holders
    assert holder.id == held.id and facts[by_batch["again"].id].source_holders == ()
    assert facts[by_batch["alice"].id] == DocumentFacts()
    # Alone, with the unowned condition only.
    alone = await _facts(ledger, [by_batch["again"]])
    assert alone[by_batch["again"].id].content_holders == (holder,)
