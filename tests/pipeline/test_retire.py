"""Retiring documents whose file is gone, on SQLite and PostgreSQL: status by status, in
bounded steps, the per-status counters exact, only this batch's chunks and vectors removed,
the CHECK of migration 0016 enforced, and a file that comes back processed again."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from ledger.app import Ledger
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from ledger.queue.retire import removed_count, retire_gone
from ledger.states import DocumentStatus as S
from tests.conftest import sql

NOW = "2026-01-01 12:00:00+00:00"
NAMES = ("done", "kept", "skipped", "failed", "running", "pending")


def _spec(name: str) -> SourceSpec:
    return SourceSpec(f"/d/{name}", size=10, mtime_ns=1)


def _add_chunks(url: str, doc_id: int, batch_id: str, word: str) -> None:
    for ordinal in range(3):
        sql(
            url,
            "INSERT INTO chunks (document_id, batch_id, ordinal, text, char_start, char_end,"
            " created_at) VALUES (:d, :b, :o, :t, 0, 5, :now)",
            d=doc_id, b=batch_id, o=ordinal, t=f"{word} {ordinal}", now=NOW,
        )  # fmt: skip
    sql(
        url,
        "INSERT INTO chunk_vectors (chunk_id, model, dimension, vector, created_at)"
        " SELECT id, 'm', 1, :v, :now FROM chunks WHERE document_id = :d",
        v=b"\x00\x00\x80\x3f", now=NOW, d=doc_id,
    )  # fmt: skip


def _held(url: str, doc_id: int) -> tuple[int, int]:
    chunks = sql(url, "SELECT count(*) FROM chunks WHERE document_id = :d", d=doc_id)[0][0]
    vectors = sql(
        url,
        "SELECT count(*) FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id"
        " WHERE c.document_id = :d",
        d=doc_id,
    )[0][0]
    return chunks, vectors


async def _setup(ledger: Ledger, url: str) -> tuple[dict[str, int], int]:
    """Batch "b" with a document in every status (done and kept hold chunks), and batch
    "o" whose document of the same source path as b's "done" holds chunks too."""
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [_spec(n) for n in NAMES])
    await ledger.queue.submit(BatchSpec(id="o", processor="noop"), [_spec("done")])
    worker = await ledger.workers.register(concurrency=10)
    claimed = {
        (d.batch_id, d.source.rsplit("/", 1)[1]): d
        for d in await ledger.queue.claim(worker, 6, batch_ids=["b", "o"])
    }
    error = ErrorInfo(code="corrupt", message="bad", retryable=False)
    await ledger.queue.complete(
        worker,
        [
            Outcome.done(claimed["b", "done"], {"chunks": 3}),
            Outcome.done(claimed["b", "kept"], {"chunks": 3}),
            Outcome.skipped(claimed["b", "skipped"], {"reason": "dup"}),
            Outcome.failed(claimed["b", "failed"], error),
            Outcome.done(claimed["o", "done"], {"chunks": 3}),
        ],
    )  # b's "running" stays leased; "pending" was never claimed
    ids = {name: doc.id for (batch, name), doc in claimed.items() if batch == "b"}
    page = await ledger.reads.documents("b", status=S.PENDING)
    ids["pending"] = page.items[0].id
    for name in ("done", "kept"):
        _add_chunks(url, ids[name], "b", name)
    theirs = claimed["o", "done"].id
    _add_chunks(url, theirs, "o", "theirs")
    return ids, theirs


def _counters_exact(url: str, batch_id: str) -> None:
    counted = sql(
        url,
        "SELECT n_pending, n_running, n_done, n_failed, n_skipped, n_cancelled"
        " FROM batches WHERE id = :b",
        b=batch_id,
    )[0]
    actual = [
        sql(
            url,
            "SELECT count(*) FROM documents WHERE batch_id = :b AND status = :s",
            b=batch_id,
            s=s,
        )[0][0]
        for s in ("pending", "running", "done", "failed", "skipped", "cancelled")
    ]
    assert list(counted) == actual


async def test_retire_by_status_in_bounded_steps(ledger: Ledger, sync_url: str) -> None:
    ids, theirs = await _setup(ledger, sync_url)
    report = await retire_gone(ledger.runner, "b", lambda source: source.endswith("/kept"), step=2)
    assert report.documents == 4  # done, skipped, failed, pending
    assert report.running == ["/d/running"]  # left to its worker
    assert (report.chunks, report.vectors) == (3, 3)

    docs = {d.source.rsplit("/", 1)[1]: d for d in (await ledger.reads.documents("b")).items}
    assert docs["done"].status is S.DONE
    assert docs["skipped"].status is S.SKIPPED
    assert docs["failed"].status is S.SKIPPED and docs["failed"].error_code is None
    assert docs["pending"].status is S.SKIPPED
    assert docs["running"].status is S.RUNNING and docs["kept"].status is S.DONE
    removed = {r[0] for r in sql(sync_url, "SELECT id FROM documents WHERE removed_at IS NOT NULL")}
    assert removed == {ids[n] for n in ("done", "skipped", "failed", "pending")}
    assert _held(sync_url, ids["done"]) == (0, 0)
    assert _held(sync_url, ids["kept"]) == (3, 3)
    assert _held(sync_url, theirs) == (3, 3)  # another batch's holder of the same path
    _counters_exact(sync_url, "b")
    async with ledger.runner.transaction(write=False) as conn:
        assert await removed_count(conn, "b") == 4
    events = [e.data for e in await ledger.reads.events("b") if e.kind == "documents_removed"]
    assert sum(int(e["documents"]) for e in events if e) == 4

    # Nothing more to retire: a second pass changes nothing.
    again = await retire_gone(ledger.runner, "b", lambda source: source.endswith("/kept"), step=2)
    assert again.documents == 0


async def test_a_file_that_comes_back_is_processed_again(ledger: Ledger, sync_url: str) -> None:
    ids, _ = await _setup(ledger, sync_url)
    await retire_gone(ledger.runner, "b", lambda source: False)
    # Back exactly as it was (same size and modification time): still processed again.
    result = await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [_spec("done")])
    assert result.requeued == 1
    doc, _attempts = await ledger.reads.document(ids["done"])
    assert doc.status is S.PENDING
    assert sql(sync_url, "SELECT removed_at FROM documents WHERE id = :d", d=ids["done"]) == [
        (None,)
    ]
    _counters_exact(sync_url, "b")


async def test_the_database_refuses_a_retired_document_that_is_not_finished(
    ledger: Ledger, sync_url: str
) -> None:
    await ledger.queue.submit(BatchSpec(id="b", processor="noop"), [_spec("pending")])
    with pytest.raises(IntegrityError):
        sql(sync_url, f"UPDATE documents SET removed_at = '{NOW}' WHERE batch_id = 'b'")


async def test_retire_below_paths_takes_only_those(ledger: Ledger, sync_url: str) -> None:
    sources = ["/w/a.txt", "/w/sub/b.txt", "/w/sub/deeper/c.txt", "/w/sub_other.txt",
               "/w/100%_sure.txt"]  # fmt: skip
    await ledger.queue.submit(BatchSpec(id="p", processor="noop"), [SourceSpec(s) for s in sources])
    gone = await retire_gone(ledger.runner, "p", lambda source: False, paths=["/w/sub"])
    assert gone.documents == 2  # below /w/sub/, not /w/sub_other.txt
    exact = await retire_gone(ledger.runner, "p", lambda source: False, paths=["/w/100%_sure.txt"])
    assert exact.documents == 1  # LIKE's wildcards in a name are taken literally
    left = {d.source for d in (await ledger.reads.documents("p")).items if d.status is S.PENDING}
    assert left == {"/w/a.txt", "/w/sub_other.txt"}
    _counters_exact(sync_url, "p")
