"""Migration 0016 (retired documents) on SQLite and PostgreSQL: existing documents get no
``removed_at``, the CHECK admits it on finished documents only, and the downgrade drops the
column with the rows kept."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from ledger.db import migrate
from tests.conftest import sql
from tests.core.test_migrations import _sync, empty_url

__all__ = ["empty_url"]  # the fixture, imported for pytest to find

NOW = "2026-01-01 12:00:00+00:00"


def _add(url: str, doc_id: int, status: str) -> None:
    finished = "NULL" if status == "pending" else f"'{NOW}'"
    result = "'{}'" if status == "done" else "NULL"
    sql(
        url,
        "INSERT INTO documents (id, batch_id, source, status, attempts, next_attempt_at,"
        f" finished_at, result, created_at, updated_at) VALUES ({doc_id}, 'b',"
        f" '/d/{doc_id}', '{status}', 0, '{NOW}', {finished}, {result}, '{NOW}', '{NOW}')",
    )


def test_0016_adds_removed_at_with_its_check_and_downgrades(empty_url: str) -> None:
    url = _sync(empty_url)
    migrate.upgrade(empty_url, "0015")
    sql(
        url,
        "INSERT INTO batches (id, processor, options, max_attempts, created_at, updated_at)"
        f" VALUES ('b', 'noop', '{{}}', 3, '{NOW}', '{NOW}')",
    )
    _add(url, 1, "done")
    _add(url, 2, "pending")
    migrate.upgrade(empty_url, "0016")
    assert sql(url, "SELECT id, removed_at FROM documents ORDER BY id") == [(1, None), (2, None)]
    sql(url, f"UPDATE documents SET removed_at = '{NOW}' WHERE id = 1")
    with pytest.raises(IntegrityError):
        sql(url, f"UPDATE documents SET removed_at = '{NOW}' WHERE id = 2")
    assert sql(url, "SELECT n_done, n_pending FROM batches") == [(1, 1)]
    migrate.downgrade(empty_url, "0015")
    assert sql(url, "SELECT id, status FROM documents ORDER BY id") == [
        (1, "done"),
        (2, "pending"),
    ]
    migrate.upgrade(empty_url)
    assert sql(url, "SELECT count(*) FROM documents WHERE removed_at IS NULL") == [(2,)]
