"""A document row whose text is not UTF-8 fails that document alone (``unreadable_row``);
the worker's claim loop, and every other document, carry on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.cli.conftest import Cli


def _insert_pending(cli: Cli, source_sql: str) -> int:
    """A new pending document in the only batch, copied from its first row."""
    with sqlite3.connect(cli.db) as conn:
        cursor = conn.execute(
            "INSERT INTO documents (batch_id, source, next_attempt_at, created_at, updated_at) "
            f"SELECT batch_id, {source_sql}, next_attempt_at, created_at, updated_at "
            "FROM documents ORDER BY id LIMIT 1"
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid


def test_a_row_the_worker_cannot_decode_fails_only_that_document(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.txt").write_text("one\n")
    (docs / "second.txt").write_text("two\n")
    first = cli("ingest", str(docs / "first.txt"), "-p", "noop")
    assert first.code == 0, first.stderr
    # Written by another program: bytes that are not UTF-8, in a text column.
    bad_path = bytes(docs / "x") + b"bad\xff\xfe.txt"
    bad = _insert_pending(cli, f"CAST(X'{bad_path.hex()}' AS TEXT)")
    good = _insert_pending(cli, "'" + str(docs / "second.txt").replace("'", "''") + "'")

    burst = cli("worker", "--burst")
    assert burst.code == 0, burst.stderr
    assert "Traceback" not in burst.stderr
    rows = cli.sql("SELECT id, status, error_code FROM documents WHERE id IN (?, ?)", bad, good)
    assert sorted(rows) == sorted([(bad, "failed", "unreadable_row"), (good, "done", None)])
    message = cli.scalar("SELECT error_message FROM documents WHERE id = ?", bad)
    assert "not valid UTF-8" in message

    # The commands that read rows still work with it in the ledger.
    batch = cli.scalar("SELECT id FROM batches")
    failures = cli("failures", "--json", batch)
    assert failures.code == 0, failures.stderr
    assert "unreadable_row" in failures.stdout
    # Printed for people on a strict UTF-8 terminal: escaped, not a UnicodeEncodeError.
    # Wide enough for the whole path, however deep the test's temporary folder is.
    human = cli("failures", batch, env={"PYTHONIOENCODING": "utf-8", "COLUMNS": "500"})
    assert human.code == 0, human.stderr
    assert "bad\\udcff\\udcfe.txt" in human.stdout
