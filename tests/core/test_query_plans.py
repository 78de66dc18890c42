"""The queue's hot statements are planned once and use the indexes made for them.

Each statement is captured as the ledger sends it. SQLite chooses a partial index (such as
``ix_documents_running_lease``, ``WHERE status = 'running'``) only when the statement's own
text says its rows are in it; a bound ``status = ?`` makes SQLite plan the statement again
for every execution, with the value (and without it, scan the whole table). Both cost time
on every claim and every finish, and no functional test would notice.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from tests.conftest import settings_for

BOUND_STATUS = re.compile(r"documents\.status\s*(=|<>|!=|IN)\s*\(?\?")


async def _sent(ledger: Ledger, call: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
    """The statements ``call`` sends that read or write ``documents``, with their values."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "documents" in statement:
            sent.append((statement, params))

    event.listen(ledger.engine.sync_engine, "before_cursor_execute", capture)
    try:
        await call()
    finally:
        event.remove(ledger.engine.sync_engine, "before_cursor_execute", capture)
    assert sent, "the call sent nothing about documents"
    return sent


def _plan_without_values(path: str, statement: str, params: Any) -> str:
    """SQLite's plan when no value can help it: every parameter bound to NULL."""
    with sqlite3.connect(path) as raw:
        rows = raw.execute(f"EXPLAIN QUERY PLAN {statement}", [None] * len(params))
        return " / ".join(row[3] for row in rows)


async def _plan(ledger: Ledger, db_url: str, statement: str, params: Any) -> str:
    """The database's plan for ``statement``: SQLite's with every value NULL, PostgreSQL's
    with the values sent, after ANALYZE (as autovacuum would have it)."""
    if db_url.startswith("sqlite"):
        path = make_url(db_url).database
        assert path is not None
        return _plan_without_values(path, statement, params)
    async with ledger.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE documents")
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", tuple(params))
        return " / ".join(row[0] for row in rows)


async def test_rescue_and_lease_expiry_read_only_running_documents(sqlite_url: str) -> None:
    path = make_url(sqlite_url).database
    assert path is not None
    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(50)]
        )
        worker = await ledger.workers.register(concurrency=1)
        await ledger.queue.claim(worker, 1)
        for call in (ledger.queue.rescue_expired, ledger.queue.earliest_lease_expiry):
            for statement, params in await _sent(ledger, call):
                plan = _plan_without_values(path, statement, params)
                assert "ix_documents_running_lease" in plan, plan
                assert "SCAN documents" not in plan, plan


async def test_claim_heartbeat_and_finish_name_statuses_in_their_text(sqlite_url: str) -> None:
    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(5)]
        )
        worker = await ledger.workers.register(concurrency=5)
        claimed: list[Any] = []

        async def claim() -> None:
            claimed.extend(await ledger.queue.claim(worker, 5))

        async def heartbeat() -> None:
            await ledger.queue.heartbeat(worker, [(d.id, d.lease_token) for d in claimed])

        async def complete() -> None:
            done = [Outcome.done(d, {}) for d in claimed]
            assert len((await ledger.queue.complete(worker, done)).recorded) == 5

        for call in (claim, heartbeat, complete):
            for statement, _ in await _sent(ledger, call):
                assert not BOUND_STATUS.search(statement), statement


async def _finish_sent(ledger: Ledger, worker: str, claimed: list[Any]) -> list[tuple[str, Any]]:
    """What finishing ``claimed`` sends about documents."""

    async def complete() -> None:
        done = [Outcome.done(d, {}) for d in claimed]
        assert len((await ledger.queue.complete(worker, done)).recorded) == len(claimed)

    return await _sent(ledger, complete)


async def test_a_finish_sends_the_same_statements_for_any_number_of_documents(
    db_url: str,
) -> None:
    # One text per statement whatever the list's length: rendered once by SQLAlchemy and
    # prepared once by the database (an expanding IN list was another statement per length).
    async with await Ledger.open(settings_for(db_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(20)]
        )
        worker = await ledger.workers.register(concurrency=20)
        texts = []
        for count in (2, 7):
            claimed = await ledger.queue.claim(worker, count)
            assert len(claimed) == count
            texts.append(
                [statement for statement, _ in await _finish_sent(ledger, worker, claimed)]
            )
        assert texts[0] == texts[1]


async def test_a_finish_finds_its_documents_by_primary_key(db_url: str) -> None:
    async with await Ledger.open(settings_for(db_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(2000)]
        )
        worker = await ledger.workers.register(concurrency=1000)
        # Many documents running: reading the running ones is not a shortcut to five of them.
        claimed = await ledger.queue.claim(worker, 1000)
        assert len(claimed) == 1000
        sent = await _finish_sent(ledger, worker, claimed[:5])
        listed = [(s, p) for s, p in sent if "json_each" in s or "ANY (" in s]
        # The fence, then the attempt rows, the events and the documents' update: three
        # statements on SQLite, one on PostgreSQL (the copies as CTEs of the update).
        assert len(listed) == (4 if db_url.startswith("sqlite") else 2), sent
        for statement, params in listed:
            plan = await _plan(ledger, db_url, statement, params)
            if db_url.startswith("sqlite"):
                assert "SEARCH documents USING INTEGER PRIMARY KEY" in plan, plan
                assert "SCAN documents" not in plan, plan
            else:
                assert "Index Scan using pk_documents on documents" in plan, plan
                assert "Seq Scan on documents" not in plan, plan


async def _hashed_and_claimed(ledger: Ledger, documents: int, claim: int) -> list[Any]:
    """Batch ``b`` of ``documents`` with known hashes, ``claim`` of them claimed."""
    await ledger.queue.submit(
        BatchSpec(id="b", processor="noop"),
        [SourceSpec(f"/d/{i}", sha256=f"{i:064x}") for i in range(documents)],
    )
    worker = await ledger.workers.register(concurrency=claim)
    return await ledger.queue.claim(worker, claim)


async def test_the_dedup_facts_read_looks_holders_up_by_their_keys(sqlite_url: str) -> None:
    # With the batch joined in, SQLite started from the batch and read every done document
    # of it for each claimed group (a cost growing with the batch), new databases having no
    # statistics to tell it otherwise.
    from ledger.index import dedup_facts

    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        claimed = await _hashed_and_claimed(ledger, 50, 10)

        async def read() -> Any:
            return await ledger.runner.read(
                lambda conn, _now: dedup_facts.read_facts(conn, claimed)
            )

        sent = await _sent(ledger, read)
        path = make_url(sqlite_url).database
        assert path is not None
        plans = {
            column: _plan_without_values(path, statement, params)
            for statement, params in sent
            for column in ("source", "source_sha256")
            if f"documents.{column} IN (SELECT" in statement
        }
        assert set(plans) == {"source", "source_sha256"}, sent
        for column, plan in plans.items():
            assert f"USING INDEX ix_documents_{column} ({column}=?)" in plan, plan
            assert "ix_documents_batch_id" not in plan, plan


async def test_the_dedup_lookups_name_statuses_in_their_text(sqlite_url: str) -> None:
    # Each ingest document's finish looks its content up; a bound status made SQLite plan
    # the lookup again at every execution (about five times its cost).
    from ledger.index import chunks, dedup_facts

    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        claimed = await _hashed_and_claimed(ledger, 5, 5)

        async def lookups() -> None:
            async def work(conn: Any, _now: Any) -> None:
                await chunks.indexed_content(conn, batch_id="b", sha256="0" * 64, exclude_id=1)
                await chunks.indexed_source(conn, batch_id="b", source="/d/1", exclude_id=1)
                await dedup_facts.read_facts(conn, claimed)

            await ledger.runner.read(work)

        for statement, _ in await _sent(ledger, lookups):
            assert not BOUND_STATUS.search(statement), statement


async def test_a_claim_reads_its_order_from_the_index(db_url: str) -> None:
    # ORDER BY next_attempt_at, id: without the id in the index PostgreSQL read every due
    # document of the batch and sorted them at every claim (all of a batch submitted at once
    # share one next_attempt_at), a cost that grew with the batch.
    async with await Ledger.open(settings_for(db_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(3000)]
        )
        worker = await ledger.workers.register(concurrency=16)

        async def claim() -> None:
            assert len(await ledger.queue.claim(worker, 16)) == 16

        leases = await _sent(ledger, claim)
        sent = [(s, p) for s, p in leases if "ORDER BY documents.next_attempt_at" in s]
        assert len(sent) == 1, sent
        statement, params = sent[0]
        plan = await _plan(ledger, db_url, statement, params)
        assert "ix_documents_batch_id_status_next_attempt_at_id" in plan, plan
        assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan


async def test_a_claim_asks_about_expired_leases_in_its_first_statement(db_url: str) -> None:
    # Whether any lease ran out is asked with the claimable batches (one statement, one
    # round trip on PostgreSQL), from the partial index of running documents' leases: a
    # claim must not read every document to learn that none has expired.
    async with await Ledger.open(settings_for(db_url)) as ledger:
        await ledger.queue.submit(
            BatchSpec(id="b", processor="noop"), [SourceSpec(f"/d/{i}") for i in range(3000)]
        )
        worker = await ledger.workers.register(concurrency=16)
        await ledger.queue.claim(worker, 16)  # some running documents, none expired

        async def claim() -> None:
            assert len(await ledger.queue.claim(worker, 16)) == 16

        sent = await _sent(ledger, claim)
        asked = [(s, p) for s, p in sent if "EXISTS" in s.upper()]
        assert len(asked) == 1 and "batches" in asked[0][0], sent
        assert not any("ORDER BY documents.lease_expires_at" in s for s, _ in sent), sent
        plan = await _plan(ledger, db_url, *asked[0])
        assert "ix_documents_running_lease" in plan, plan
        assert "SCAN documents" not in plan and "Seq Scan on documents" not in plan, plan
