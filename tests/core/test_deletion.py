"""Deleting a batch: every row of it in every table, its stored files and nothing else, in
bounded steps that an interruption can leave half-done and a second run finishes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.errors import Conflict, NotFound
from ledger.model import BatchSpec, Outcome, SourceSpec
from ledger.queue import deletion
from ledger.queue.batch_edits import BatchChanges
from ledger.states import DocumentStatus
from tests.conftest import FakeClock, settings_for, sql

STEP_ROWS = 7


@dataclass
class Made:
    """A batch with rows in every table that references it, and files on disk."""

    batch_id: str
    stored: list[Path]  # uploaded files inside the storage folder
    outside: Path  # a server file the batch was submitted from


@pytest.fixture
async def deleter(db_url: str, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Ledger]:
    settings = settings_for(db_url, storage_dir=tmp_path / "storage", delete_step_rows=STEP_ROWS)
    led = await Ledger.open(settings, clock=clock)
    try:
        yield led
    finally:
        await led.close()


async def make_batch(
    ledger: Ledger,
    sync_url: str,
    batch_id: str,
    *,
    word: str,
    owner: str | None = None,
    n: int = 12,
) -> Made:
    """Documents (stored uploads and one server file), attempts, events, chunks with a full-text
    word and vectors, a resumable upload with its file, and the create request's row."""
    storage = ledger.settings.storage
    folder = storage / (owner or "_local") / batch_id
    folder.mkdir(parents=True)
    stored = []
    for i in range(n):
        path = folder / f"f{i}.txt"
        path.write_text(f"{word} {i}")
        stored.append(path)
    outside = storage.parent / f"server-{batch_id}" / "kept.txt"
    outside.parent.mkdir(parents=True)
    outside.write_text("a file the user pointed at")
    sources = [SourceSpec(str(p)) for p in [*stored, outside]]
    await ledger.queue.submit(BatchSpec(id=batch_id, processor="noop", owner=owner), sources)
    worker = await ledger.workers.register(concurrency=n + 1)
    claimed = await ledger.queue.claim(worker, n + 1, batch_ids=[batch_id])
    assert len(claimed) == n + 1
    await ledger.queue.complete(worker, [Outcome.done(d, {"ok": True}) for d in claimed])
    now = "2026-01-01 12:00:00+00:00"
    for doc in claimed:
        for ordinal in range(3):
            sql(
                sync_url,
                "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end,"
                " created_at) VALUES (:d, :b, :o, :t, 0, 5, :now)",
                d=doc.id, b=batch_id, o=ordinal, t=f"{word} chunk {ordinal}", now=now,
            )  # fmt: skip
    sql(
        sync_url,
        "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at)"
        " SELECT id, 'm', 1, :v, :now FROM chunks WHERE batch_id = :b",
        v=b"\x00\x00\x80\x3f", now=now, b=batch_id,
    )  # fmt: skip
    upload_file = storage / "uploads" / f"up-{batch_id}"
    upload_file.parent.mkdir(parents=True, exist_ok=True)
    upload_file.write_bytes(b"partial")
    stored.append(upload_file)
    sql(
        sync_url,
        "INSERT INTO uploads (id, owner, state, upload_offset, batch_id, path, expires_at,"
        " created_at, updated_at) VALUES (:id, :o, 'receiving', 7, :b, :p, :now, :now, :now)",
        id=f"up-{batch_id}", o=owner, b=batch_id, p=str(upload_file), now=now,
    )  # fmt: skip
    sql(
        sync_url,
        "INSERT INTO batch_requests (batch_id, fingerprint, created_at) VALUES (:b, :f, :now)",
        b=batch_id, f="0" * 64, now=now,
    )  # fmt: skip
    return Made(batch_id, stored, outside)


# Every table that holds rows of a batch, and how to count one batch's rows in it.
COUNTS = {
    "batches": "SELECT count(*) FROM batches WHERE id = :b",
    "documents": "SELECT count(*) FROM documents WHERE batch_id = :b",
    "attempts": "SELECT count(*) FROM attempts WHERE batch_id = :b",
    "events": "SELECT count(*) FROM events WHERE batch_id = :b",
    "chunks": "SELECT count(*) FROM chunks WHERE batch_id = :b",
    "chunk_vectors": "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id"
    " WHERE c.batch_id = :b",
    "uploads": "SELECT count(*) FROM uploads WHERE batch_id = :b",
    "batch_requests": "SELECT count(*) FROM batch_requests WHERE batch_id = :b",
}

# Rows whose batch (or chunk, or document) is gone: none may ever exist.
ORPHANS = {
    "documents": "SELECT count(*) FROM documents WHERE batch_id NOT IN (SELECT id FROM batches)",
    "attempts": "SELECT count(*) FROM attempts WHERE batch_id NOT IN (SELECT id FROM batches)"
    " OR document_id NOT IN (SELECT id FROM documents)",
    "events": "SELECT count(*) FROM events WHERE batch_id NOT IN (SELECT id FROM batches)",
    "chunks": "SELECT count(*) FROM chunks WHERE batch_id NOT IN (SELECT id FROM batches)"
    " OR document_id NOT IN (SELECT id FROM documents)",
    "chunk_vectors": "SELECT count(*) FROM chunk_vectors WHERE chunk_id NOT IN"
    " (SELECT id FROM chunks)",
    "uploads": "SELECT count(*) FROM uploads WHERE batch_id NOT IN (SELECT id FROM batches)",
    "batch_requests": "SELECT count(*) FROM batch_requests WHERE batch_id NOT IN"
    " (SELECT id FROM batches)",
}


def counts(sync_url: str, batch_id: str) -> dict[str, int]:
    return {t: sql(sync_url, q, b=batch_id)[0][0] for t, q in COUNTS.items()}


def orphans(sync_url: str) -> dict[str, int]:
    return {t: n for t, q in ORPHANS.items() if (n := sql(sync_url, q)[0][0])}


def full_text_hits(sync_url: str, word: str) -> int:
    """Rows the full-text index itself still finds for ``word`` (not through ``chunks``)."""
    if sync_url.startswith("sqlite"):
        return int(
            sql(sync_url, "SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH :w", w=word)[0][0]
        )
    query = "SELECT count(*) FROM chunks WHERE tsv @@ plainto_tsquery('simple', :w)"
    return int(sql(sync_url, query, w=word)[0][0])


async def test_delete_removes_every_row_and_stored_file_and_nothing_else(
    deleter: Ledger, sync_url: str
) -> None:
    gone = await make_batch(deleter, sync_url, "gone", word="zebra")
    kept = await make_batch(deleter, sync_url, "kept", word="yak")
    before_gone, before_kept = counts(sync_url, "gone"), counts(sync_url, "kept")
    assert all(before_gone.values()), before_gone  # every table had rows of the batch
    assert full_text_hits(sync_url, "zebra") == 39

    steps: list[int] = []
    seen = [0]

    def step(report: deletion.DeletionReport) -> None:
        total = sum(n for t, n in report.rows.items() if t != "chunk_vectors")
        steps.append(total - seen[0])
        seen[0] = total

    report = await deleter.control.delete_batch("gone", on_step=step)

    assert counts(sync_url, "gone") == dict.fromkeys(COUNTS, 0)
    assert counts(sync_url, "kept") == before_kept
    assert orphans(sync_url) == {}
    assert full_text_hits(sync_url, "zebra") == 0 and full_text_hits(sync_url, "yak") == 39
    assert {t: report.rows.get(t, 0) for t in COUNTS} == before_gone
    # Bounded: no transaction removed more than STEP_ROWS rows of a table.
    assert max(steps) == STEP_ROWS and len(steps) > sum(before_gone.values()) // STEP_ROWS
    assert report.files == len(gone.stored)
    assert not any(p.exists() for p in gone.stored)
    assert not (deleter.settings.storage / "_local" / "gone").exists()  # emptied folder
    assert gone.outside.read_text() == "a file the user pointed at"  # not an upload: kept
    assert all(p.exists() for p in kept.stored) and kept.outside.exists()
    assert (await deleter.reads.batch("kept")).counts[DocumentStatus.DONE] == 13

    with pytest.raises(NotFound):  # deleting twice: the second finds nothing
        await deleter.control.delete_batch("gone")


async def test_a_stored_file_another_batch_names_is_kept(deleter: Ledger, sync_url: str) -> None:
    made = await make_batch(deleter, sync_url, "gone", word="zebra", n=2)
    shared = made.stored[0]
    await deleter.queue.submit(BatchSpec(id="other", processor="noop"), [SourceSpec(str(shared))])
    await deleter.control.delete_batch("gone")
    assert shared.exists() and not made.stored[1].exists()
    # A batch made from a server path that lies in the storage folder (here: another
    # batch's unfinished upload) does not take that file with it.
    kept = await make_batch(deleter, sync_url, "kept", word="yak", n=1)
    upload_file = kept.stored[-1]
    await deleter.queue.submit(
        BatchSpec(id="pointer", processor="noop"), [SourceSpec(str(upload_file))]
    )
    report = await deleter.control.delete_batch("pointer")
    assert report.rows["documents"] == 1 and report.files == 0
    assert upload_file.read_bytes() == b"partial"


async def test_running_documents_refuse_deletion_unless_forced(
    deleter: Ledger, sync_url: str
) -> None:
    await deleter.queue.submit(
        BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(5)]
    )
    worker = await deleter.workers.register(concurrency=2)
    running = await deleter.queue.claim(worker, 2)
    with pytest.raises(Conflict, match="2 running"):
        await deleter.control.delete_batch("b")
    assert counts(sync_url, "b")["documents"] == 5  # refused: nothing removed
    assert (await deleter.reads.batch("b")).counts[DocumentStatus.RUNNING] == 2

    report = await deleter.control.delete_batch("b", force=True)
    assert report.cancelled == 2
    assert counts(sync_url, "b") == dict.fromkeys(COUNTS, 0)
    # The workers' leases went with the documents: what they finish is not recorded.
    result = await deleter.queue.complete(
        worker, [Outcome.done(d, {"late": True}) for d in running]
    )
    assert orphans(sync_url) == {} and result is not None


async def test_another_tenants_batch_is_not_found_and_untouched(
    deleter: Ledger, sync_url: str
) -> None:
    made = await make_batch(deleter, sync_url, "theirs", word="zebra", owner="alice", n=3)
    before = counts(sync_url, "theirs")
    with pytest.raises(NotFound):
        await deleter.control.delete_batch("theirs", owner="mallory")
    assert counts(sync_url, "theirs") == before
    assert all(p.exists() for p in made.stored)
    await deleter.control.delete_batch("theirs", owner="alice")
    assert counts(sync_url, "theirs") == dict.fromkeys(COUNTS, 0)


async def test_an_interrupted_deletion_hides_the_batch_and_a_second_run_finishes_it(
    deleter: Ledger, sync_url: str
) -> None:
    made = await make_batch(deleter, sync_url, "half", word="zebra")
    await deleter.queue.submit(BatchSpec(id="half-pending", processor="noop"), [])

    # What a process killed after its first steps leaves: marked, partly removed.
    async def first_steps(conn: AsyncConnection, now: datetime) -> None:
        await deletion.start(conn, "half", owner=None, force=False, now=now)
        await deletion.delete_chunks(conn, "half", STEP_ROWS)

    await deleter.runner.run(first_steps)
    left = counts(sync_url, "half")
    assert 0 < left["chunks"] < 39 and left["documents"] == 13

    # Hidden everywhere, and nothing can be claimed from it or added to it.
    with pytest.raises(NotFound):
        await deleter.reads.batch("half")
    with pytest.raises(NotFound):
        await deleter.reads.documents("half")
    listed = await deleter.reads.batches()
    assert [b.id for b in listed.items] == ["half-pending"]
    assert await deleter.index.search("zebra", k=5) == []
    assert await deleter.control.unfinished_deletions() == ["half"]
    assert await deleter.control.unfinished_deletions(owner="alice") == []
    with pytest.raises(Conflict):
        await deleter.queue.submit(BatchSpec(id="half", processor="noop"), [SourceSpec("/new")])
    for steer in (
        deleter.control.pause,
        deleter.control.resume,
        deleter.control.cancel,
        deleter.control.retry_failed,
    ):
        with pytest.raises(NotFound):
            await steer("half")
    with pytest.raises(NotFound):
        await deleter.control.update_batch("half", BatchChanges(priority=5))
    # The database itself refuses, whatever the code above it does.
    now = "2026-01-01 12:00:00+00:00"
    with pytest.raises(DBAPIError, match="being deleted"):
        sql(
            sync_url,
            "INSERT INTO documents (batch_id, source, next_attempt_at, created_at, updated_at)"
            " VALUES ('half', '/sneaked', :now, :now, :now)",
            now=now,
        )
    first = "(SELECT min(id) FROM documents WHERE batch_id = 'half')"
    sql(
        sync_url,
        "UPDATE documents SET status = 'pending', finished_at = NULL, result = NULL"
        f" WHERE id = {first}",
    )
    # A claim skips its documents (the row stays pending) rather than failing the claim.
    sql(
        sync_url,
        "UPDATE documents SET status = 'running', lease_owner = (SELECT min(id) FROM workers),"
        " lease_token = 't', lease_expires_at = :now, started_at = :now, attempts = 1"
        " WHERE batch_id = 'half' AND status = 'pending'",
        now=now,
    )
    statuses = "SELECT status, count(*) FROM documents WHERE batch_id = 'half' GROUP BY status"
    assert sorted(sql(sync_url, statuses)) == [("done", 12), ("pending", 1)]
    worker = await deleter.workers.register(concurrency=10)
    assert await deleter.queue.claim(worker, 10) == []

    await deleter.control.delete_batch("half")  # the second run finishes it
    assert counts(sync_url, "half") == dict.fromkeys(COUNTS, 0)
    assert orphans(sync_url) == {}
    assert not any(p.exists() for p in made.stored) and made.outside.exists()
    assert await deleter.control.unfinished_deletions() == []
