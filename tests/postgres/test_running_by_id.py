"""The statements that pick running documents by id (the finish's fence and its update, the
heartbeat) never read the partial index of running leases. PostgreSQL keeps an entry there
for every running version of a row until VACUUM; a bitmap scan of it, ANDed with the primary
key's, read every one of those entries at every finish, and never marks them dead."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from ledger.app import Ledger
from ledger.model import BatchSpec, Outcome, SourceSpec
from ledger.worker.runtime import Worker
from tests.conftest import settings_for, sql

PICKS_BY_ID = ("SELECT documents.id", "WITH ended_attempts", "UPDATE documents SET lease_expires")


async def test_running_documents_are_found_by_id_without_the_lease_index(
    pg_url: str, pg_sync_url: str
) -> None:
    async with await Ledger.open(settings_for(pg_url, concurrency=64, claim_batch=64)) as ledger:
        # Thousands of documents through the index of running leases, then 64 running: its
        # statistics now say it is small, and it holds thousands of dead entries.
        spec = BatchSpec(id="past", processor="noop")
        await ledger.queue.submit(spec, [SourceSpec(f"/past/{i}") for i in range(3000)])
        await Worker(ledger, concurrency=64).run(burst=True)
        spec = BatchSpec(id="now", processor="noop")
        await ledger.queue.submit(spec, [SourceSpec(f"/now/{i}") for i in range(64)])
        sql(pg_sync_url, "ANALYZE documents")
        worker_id = await ledger.workers.register(concurrency=64, processors=["noop"])
        held = await ledger.queue.claim(worker_id, 64)
        assert len(held) == 64
        # The rows status = 'running' picks are those with a lease: the constraints say so.
        by_status = sql(pg_sync_url, "SELECT id FROM documents WHERE status = 'running'")
        by_lease = sql(pg_sync_url, "SELECT id FROM documents WHERE lease_token IS NOT NULL")
        assert sorted(r.id for r in by_status) == sorted(r.id for r in by_lease)
        assert sorted(r.id for r in by_lease) == sorted(d.id for d in held)
        plans: dict[str, str] = {}

        def explain(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if statement.startswith(PICKS_BY_ID) and "FOR UPDATE SKIP LOCKED" not in statement:
                cursor.execute("EXPLAIN " + statement, parameters)
                plans[statement[:40]] = "\n".join(row[0] for row in cursor.fetchall())

        event.listen(ledger.engine.sync_engine, "before_cursor_execute", explain)
        try:
            lost = await ledger.queue.heartbeat(worker_id, [(d.id, d.lease_token) for d in held])
            result = await ledger.queue.complete(worker_id, [Outcome.done(d, {}) for d in held])
        finally:
            event.remove(ledger.engine.sync_engine, "before_cursor_execute", explain)
    assert lost == [] and len(result.recorded) == 64
    assert len(plans) == 3, list(plans)
    for statement, plan in plans.items():
        assert "ix_documents_running_lease" not in plan, (statement, plan)
