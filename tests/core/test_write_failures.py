"""Which database errors mean "cannot write", and how long they are retried."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ledger.db.write_failures import WriteRetry, is_write_failure, write_failed


def _real_error(tmp_path: Path, statement: str) -> sqlite3.Error:
    conn = sqlite3.connect(tmp_path / f"small-{len(list(tmp_path.iterdir()))}.db")
    try:
        conn.execute("CREATE TABLE t (x BLOB)")
        # SQLite's own page limit: the next page it needs fails with SQLITE_FULL.
        conn.execute("PRAGMA max_page_count = 2")
        with pytest.raises(sqlite3.Error) as caught:
            conn.execute(statement)
        return caught.value
    finally:
        conn.close()


def test_a_full_database_is_a_write_failure_other_errors_are_not(tmp_path: Path) -> None:
    full = _real_error(tmp_path, "INSERT INTO t VALUES (zeroblob(100000))")
    assert "full" in str(full)
    assert is_write_failure(full)
    assert write_failed(full).message == (
        "cannot write to the database: database or disk is full (is its disk full?)"
    )
    missing = _real_error(tmp_path, "SELECT * FROM no_such_table")
    assert not is_write_failure(missing)


def test_retries_are_bounded_in_number_and_total_wait() -> None:
    retry = WriteRetry(attempts=5, max_wait=10.0)
    delays = []
    while (delay := retry.next_delay()) is not None:
        delays.append(delay)
    assert len(delays) == 4  # five attempts: four waits between them
    assert delays == sorted(delays) and sum(delays) <= 10.0

    short = WriteRetry(attempts=100, max_wait=1.0)
    waits = []
    while (delay := short.next_delay()) is not None:
        waits.append(delay)
    assert sum(waits) == pytest.approx(1.0)
    assert len(waits) < 100

    short.reset()
    assert short.next_delay() is not None
