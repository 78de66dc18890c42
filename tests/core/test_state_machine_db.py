"""The database itself enforces the document state machine and the row invariants."""

from __future__ import annotations

import importlib.util
import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from ledger.app import Ledger
from ledger.db.migrate import migrations_dir
from ledger.model import BatchSpec, ErrorInfo, Outcome, SourceSpec
from ledger.states import DOCUMENT_TRANSITIONS, DocumentStatus, transition_allowed
from tests.conftest import sql

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


def _fields_for(status: DocumentStatus, worker: str) -> dict[str, object]:
    """Column values that satisfy every CHECK constraint for a document in ``status``."""
    base: dict[str, object] = {
        "status": status.value,
        "lease_owner": None,
        "lease_token": None,
        "lease_expires_at": None,
        "finished_at": None,
        "error_code": None,
        "result": None,
        "attempts": 1,
        "started_at": NOW,
    }
    if status is DocumentStatus.RUNNING:
        base.update(lease_owner=worker, lease_token="f" * 32, lease_expires_at=LATER)
    if status in (
        DocumentStatus.DONE,
        DocumentStatus.FAILED,
        DocumentStatus.SKIPPED,
        DocumentStatus.CANCELLED,
    ):
        base["finished_at"] = LATER
    if status is DocumentStatus.DONE:
        base["result"] = "{}"
    if status is DocumentStatus.FAILED:
        base["error_code"] = "boom"
    return base


_SET = (
    "status = :status, lease_owner = :lease_owner, lease_token = :lease_token,"
    " lease_expires_at = :lease_expires_at, finished_at = :finished_at,"
    " error_code = :error_code, result = :result, attempts = :attempts,"
    " started_at = :started_at"
)


async def _document_in(ledger: Ledger, status: DocumentStatus, n: int) -> tuple[int, str]:
    """A document brought to ``status`` through the ledger's own operations."""
    result = await ledger.queue.submit(
        BatchSpec(id=f"b{n}", processor="noop"), [SourceSpec(f"/doc/{n}")]
    )
    worker = await ledger.workers.register(concurrency=1)
    if status is DocumentStatus.PENDING:
        doc = (await ledger.reads.documents(result.batch.id)).items[0]
        return doc.id, worker
    if status is DocumentStatus.CANCELLED:
        await ledger.control.cancel(result.batch.id)
        doc = (await ledger.reads.documents(result.batch.id)).items[0]
        return doc.id, worker
    (claimed,) = await ledger.queue.claim(worker, 1, batch_ids=[result.batch.id])
    if status is DocumentStatus.DONE:
        await ledger.queue.complete(worker, [Outcome.done(claimed, {})])
    elif status is DocumentStatus.SKIPPED:
        await ledger.queue.complete(worker, [Outcome.skipped(claimed, {})])
    elif status is DocumentStatus.FAILED:
        error = ErrorInfo(code="bad", message="bad", retryable=False)
        await ledger.queue.complete(worker, [Outcome.failed(claimed, error)])
    return claimed.id, worker


async def test_every_transition_is_allowed_or_rejected_by_the_database(
    ledger: Ledger, sync_url: str
) -> None:
    pairs = list(itertools.product(DocumentStatus, DocumentStatus))
    for n, (old, new) in enumerate(pairs):
        doc_id, worker = await _document_in(ledger, old, n)
        assert sql(sync_url, "SELECT status FROM documents WHERE id = :i", i=doc_id)[0][0] == old
        statement = f"UPDATE documents SET {_SET} WHERE id = :id"
        params = {**_fields_for(new, worker), "id": doc_id}
        if transition_allowed(old, new):
            sql(sync_url, statement, **params)
            assert (
                sql(sync_url, "SELECT status FROM documents WHERE id = :i", i=doc_id)[0][0] == new
            )
        else:
            with pytest.raises(DBAPIError, match="forbidden document status transition"):
                sql(sync_url, statement, **params)


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        ("status = 'running', attempts = 1", "lease_iff_running"),
        ("status = 'cancelled', finished_at = NULL", "finished_iff_final"),
        ("attempts = -1", "attempts_nonnegative"),
    ],
)
async def test_row_invariants_are_check_constraints(
    ledger: Ledger, sync_url: str, change: str, constraint: str
) -> None:
    result = await ledger.queue.submit(BatchSpec(id="c", processor="noop"), [SourceSpec("/a")])
    doc = (await ledger.reads.documents(result.batch.id)).items[0]
    with pytest.raises(DBAPIError, match=constraint):
        sql(sync_url, f"UPDATE documents SET {change} WHERE id = :i", i=doc.id)


async def test_unknown_status_is_rejected_on_insert(ledger: Ledger, sync_url: str) -> None:
    await ledger.queue.submit(BatchSpec(id="s", processor="noop"), [])
    with pytest.raises(DBAPIError, match="status_valid"):
        sql(
            sync_url,
            "INSERT INTO documents (batch_id, source, status, attempts, next_attempt_at,"
            " created_at, updated_at) VALUES ('s', '/x', 'exploded', 0, :t, :t, :t)",
            t=NOW,
        )


async def test_done_needs_a_result_and_failed_needs_a_code(ledger: Ledger, sync_url: str) -> None:
    doc_id, worker = await _document_in(ledger, DocumentStatus.RUNNING, 1)
    done = {**_fields_for(DocumentStatus.DONE, worker), "result": None, "id": doc_id}
    with pytest.raises(DBAPIError):
        sql(sync_url, f"UPDATE documents SET {_SET} WHERE id = :id", **done)
    failed = {**_fields_for(DocumentStatus.FAILED, worker), "error_code": None, "id": doc_id}
    with pytest.raises(DBAPIError):
        sql(sync_url, f"UPDATE documents SET {_SET} WHERE id = :id", **failed)


async def test_unique_source_per_batch_and_foreign_keys(ledger: Ledger, sync_url: str) -> None:
    await ledger.queue.submit(BatchSpec(id="u", processor="noop"), [SourceSpec("/same")])
    with pytest.raises(DBAPIError):
        sql(
            sync_url,
            "INSERT INTO documents (batch_id, source, status, attempts, next_attempt_at,"
            " created_at, updated_at) VALUES ('u', '/same', 'pending', 0, :t, :t, :t)",
            t=NOW,
        )
    with pytest.raises(DBAPIError):
        sql(
            sync_url,
            "INSERT INTO documents (batch_id, source, status, attempts, next_attempt_at,"
            " created_at, updated_at) VALUES ('no-such-batch', '/x', 'pending', 0, :t, :t, :t)",
            t=NOW,
        )


async def test_counters_match_group_by_after_every_kind_of_change(
    ledger: Ledger, sync_url: str
) -> None:
    for n, status in enumerate(DocumentStatus):
        await _document_in(ledger, status, n)
    sql(sync_url, "DELETE FROM documents WHERE batch_id = 'b0'")
    rows = sql(
        sync_url,
        "SELECT b.id, b.n_pending, b.n_running, b.n_done, b.n_failed, b.n_skipped,"
        " b.n_cancelled FROM batches b ORDER BY b.id",
    )
    truth = {
        (batch_id, status): count
        for batch_id, status, count in sql(
            sync_url, "SELECT batch_id, status, count(*) FROM documents GROUP BY 1, 2"
        )
    }
    for row in rows:
        batch_id, *counts = row
        for status, count in zip(DocumentStatus, counts, strict=True):
            assert count == truth.get((batch_id, status.value), 0), (batch_id, status)


def _migration(prefix: str) -> Any:
    path = next(Path(migrations_dir(), "versions").glob(f"{prefix}_*.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{prefix}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("prefix", ["0001", "0023"])  # 0023 rewrote SQLite's trigger
def test_migration_transition_list_matches_the_domain_model(prefix: str) -> None:
    module = _migration(prefix)
    frozen = {tuple(pair.split(">")) for pair in module.ALLOWED}
    assert frozen == {(a.value, b.value) for a, b in DOCUMENT_TRANSITIONS}
    assert len(frozen) == len(module.ALLOWED)
    if prefix == "0001":
        assert set(module.STATUSES) == {s.value for s in DocumentStatus}
