"""Child documents in the ledger core, on both backends: the schema's guarantees (CHECK,
foreign key with cascade) and the finish transaction that creates them, fenced by the
parent's lease, all or nothing, replacing earlier children."""

from __future__ import annotations

import msgspec
import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.errors import Conflict
from ledger.model import BatchSpec, ChildFile, ClaimedDocument, Outcome, SourceSpec
from ledger.queue import deletion
from ledger.states import DocumentStatus
from tests.conftest import FakeClock, sql

S = DocumentStatus


def child(n: int) -> ChildFile:
    return ChildFile(
        member_path=f"dir/m{n}.txt",
        source=f"/store/members/1/{n}.txt",
        size=n + 1,
        sha256=f"{n:064x}",
        meta={"member_of": {"source": "/in/box.zip", "meta": None}, "member_path": f"dir/m{n}.txt"},
    )


async def claimed_parent(ledger: Ledger) -> tuple[str, ClaimedDocument]:
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop"), [SourceSpec("/in/box.zip", size=1)]
    )
    worker = await ledger.workers.register(concurrency=1)
    (doc,) = await ledger.queue.claim(worker, 1)
    return worker, doc


def children_rows(url: str) -> list[tuple[str, str, int]]:
    return [
        tuple(r)
        for r in sql(
            url,
            "SELECT member_path, status, parent_id FROM documents WHERE parent_id IS NOT NULL "
            "ORDER BY member_path",
        )
    ]


async def test_the_finish_creates_every_child_pending_in_the_batch(
    ledger: Ledger, sync_url: str
) -> None:
    worker, doc = await claimed_parent(ledger)
    many = tuple(child(n) for n in range(1_200))  # more than one INSERT's worth
    result = await ledger.queue.complete(
        worker, [Outcome.done(doc, {"members": 1_200}, children=many)]
    )
    assert result.recorded == [doc.id] and result.adopted == [doc.id]
    rows = children_rows(sync_url)
    assert len(rows) == 1_200 and {r[1] for r in rows} == {"pending"}
    assert {r[2] for r in rows} == {doc.id}
    batch = await ledger.reads.batch("b")
    assert batch.counts[S.DONE] == 1 and batch.counts[S.PENDING] == 1_200
    assert batch.completed_at is None  # the children are still to do
    info, _ = await ledger.reads.document(doc.id)
    assert info.parent_id is None and info.member_path is None
    page = await ledger.reads.documents("b", status=S.PENDING, limit=1)
    (first,) = page.items
    assert first.parent_id == doc.id and first.member_path == "dir/m0.txt"
    assert first.size == 1 and first.sha256 == f"{0:064x}"


async def test_a_finish_that_creates_children_leases_nothing_in_its_transaction(
    ledger: Ledger, sync_url: str
) -> None:
    """A worker that asks its finish to claim too gets no claim from a finish that created
    children: a crash right after that commit leaves them pending, charged nothing."""
    worker, doc = await claimed_parent(ledger)
    result = await ledger.queue.complete(
        worker,
        [Outcome.done(doc, {"members": 2}, children=(child(0), child(1)))],
        claim=5,
        processors=["noop"],
    )
    assert result.adopted == [doc.id] and result.claimed is None
    assert {r[1] for r in children_rows(sync_url)} == {"pending"}
    assert sql(sync_url, "SELECT count(*) FROM attempts") == [(1,)]
    # The caller claims on its own, in a transaction of its own.
    assert len(await ledger.queue.claim(worker, 5)) == 2


async def test_a_lost_lease_creates_no_child(
    ledger: Ledger, clock: FakeClock, sync_url: str
) -> None:
    worker, doc = await claimed_parent(ledger)
    clock.advance(31)  # the lease runs out and another worker takes the parent
    other = await ledger.workers.register(concurrency=1)
    (again,) = await ledger.queue.claim(other, 1)
    late = await ledger.queue.complete(worker, [Outcome.done(doc, {}, children=(child(0),))])
    assert late.lost == [doc.id] and late.adopted == []
    assert children_rows(sync_url) == []
    await ledger.queue.complete(other, [Outcome.done(again, {}, children=(child(1), child(2)))])
    assert [r[0] for r in children_rows(sync_url)] == ["dir/m1.txt", "dir/m2.txt"]


async def test_a_parent_done_again_replaces_its_children(ledger: Ledger, sync_url: str) -> None:
    worker, doc = await claimed_parent(ledger)
    await ledger.queue.complete(worker, [Outcome.done(doc, {}, children=(child(0), child(1)))])
    # The parent's file changed: resubmitting requeues it.
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop"), [SourceSpec("/in/box.zip", size=9)]
    )
    claimed = await ledger.queue.claim(worker, 10)
    parent = next(d for d in claimed if d.id == doc.id)
    await ledger.queue.complete(worker, [Outcome.done(parent, {}, children=(child(5),))])
    assert [r[0] for r in children_rows(sync_url)] == ["dir/m5.txt"]
    batch = await ledger.reads.batch("b")
    assert batch.total == 2


async def test_a_cancelled_batch_gets_no_children(ledger: Ledger, sync_url: str) -> None:
    worker, doc = await claimed_parent(ledger)
    await ledger.control.cancel("b")
    result = await ledger.queue.complete(worker, [Outcome.done(doc, {}, children=(child(0),))])
    assert result.recorded == [doc.id] and result.adopted == []  # the worker discards them
    assert children_rows(sync_url) == []


async def test_the_schema_holds_parent_and_member_path_together(
    ledger: Ledger, sync_url: str
) -> None:
    worker, doc = await claimed_parent(ledger)
    await ledger.queue.complete(worker, [Outcome.done(doc, {}, children=(child(0),))])
    insert = (
        "INSERT INTO documents (batch_id, source, status, next_attempt_at, created_at, "
        "updated_at, parent_id, member_path) SELECT batch_id, :source, 'pending', "
        "next_attempt_at, created_at, updated_at, :parent, :member FROM documents WHERE id = :id"
    )
    with pytest.raises(IntegrityError):
        sql(sync_url, insert, source="/x", parent=doc.id, member=None, id=doc.id)
    with pytest.raises(IntegrityError):
        sql(sync_url, insert, source="/y", parent=None, member="a.txt", id=doc.id)
    with pytest.raises(IntegrityError):  # the parent must exist
        sql(sync_url, insert, source="/z", parent=10**9, member="a.txt", id=doc.id)
    # Deleting the parent takes its children (ON DELETE CASCADE), and the counters follow.
    sql(sync_url, "DELETE FROM documents WHERE id = :id", id=doc.id)
    assert sql(sync_url, "SELECT count(*) FROM documents") == [(0,)]
    assert (await ledger.reads.batch("b")).total == 0
    if sync_url.startswith("sqlite"):
        keys = sql(sync_url, "SELECT * FROM pragma_foreign_key_list('documents')")
        (parent_key,) = [k for k in keys if k[3] == "parent_id"]
        assert parent_key[2] == "documents" and parent_key[6] == "CASCADE"


async def test_a_member_file_the_batch_already_names_fails_the_finish_whole(
    ledger: Ledger, sync_url: str
) -> None:
    worker, doc = await claimed_parent(ledger)
    taken = child(1).source  # someone submitted the extracted file itself to the batch
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [SourceSpec(taken)])
    with pytest.raises(Conflict, match="already documents"):
        await ledger.queue.complete(worker, [Outcome.done(doc, {}, children=(child(0), child(1)))])
    assert children_rows(sync_url) == []  # rolled back: none of them
    info, _ = await ledger.reads.document(doc.id)
    assert info.status is S.RUNNING


async def test_an_object_member_keeps_its_time_and_etag_and_unadopted_parents_are_found(
    ledger: Ledger, sync_url: str
) -> None:
    worker, doc = await claimed_parent(ledger)
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [SourceSpec("/in/other.zip")])
    stored = msgspec.structs.replace(
        child(0),
        source="s3://bucket/store/members/1/0.txt",
        mtime_ns=1_700_000_000_000_000_000,
        meta={**child(0).meta, "etag": "abc"},
    )
    ids = [r[0] for r in sql(sync_url, "SELECT id FROM documents ORDER BY id")]
    assert len(ids) == 2

    async def unadopted(conn: AsyncConnection, now: object) -> list[int]:
        return await deletion.member_parents(conn, ids)

    # Claimed and not done: its attempt may have written member objects no row names.
    assert await ledger.runner.run(unadopted, write=False) == [doc.id]
    await ledger.queue.complete(worker, [Outcome.done(doc, {"members": 1}, children=(stored,))])
    # Done with children: its prefix may still hold what an outrun attempt left there.
    # The other never started.
    assert await ledger.runner.run(unadopted, write=False) == [doc.id]
    assert sql(
        sync_url,
        "SELECT source, source_mtime_ns, source_size FROM documents WHERE parent_id = :p",
        p=doc.id,
    ) == [("s3://bucket/store/members/1/0.txt", 1_700_000_000_000_000_000, 1)]
