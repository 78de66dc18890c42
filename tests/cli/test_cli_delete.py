"""``ledger delete`` as a real subprocess: what it removes, what it refuses, and a deletion
killed with SIGKILL half-way that a second run finishes."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.cli.conftest import Cli
from tests.conftest import settings_for, sql

TABLES = ("documents", "attempts", "events", "chunks", "uploads", "batch_requests")


def rows_of(cli: Cli, batch_id: str) -> dict[str, int]:
    counts = {
        t: cli.scalar(f"SELECT count(*) FROM {t} WHERE batch_id = ?", batch_id) for t in TABLES
    }
    counts["batches"] = cli.scalar("SELECT count(*) FROM batches WHERE id = ?", batch_id)
    return counts


def test_delete_removes_the_batch_and_leaves_server_files_and_other_batches(
    cli: Cli, corpus: Path
) -> None:
    for batch_id in ("gone", "kept"):
        made = cli("ingest", str(corpus), "-b", batch_id, "-p", "noop", "--json")
        assert made.code == 0, made.stderr
    kept_before = rows_of(cli, "kept")
    assert rows_of(cli, "gone")["attempts"] == 30

    deleted = cli("delete", "gone", "--json")
    assert deleted.code == 0, deleted.stderr
    report = deleted.json()
    assert report["batch"] == "gone" and report["rows"]["documents"] == 30
    assert report["rows"]["attempts"] == 30 and report["files"] == 0  # nothing was uploaded
    assert rows_of(cli, "gone") == dict.fromkeys([*TABLES, "batches"], 0)
    assert rows_of(cli, "kept") == kept_before
    assert len(list(corpus.rglob("*.txt"))) == 30  # the files it was submitted from stay
    assert [b["id"] for b in cli("batches", "--json").json()] == ["kept"]

    again = cli("delete", "gone", "-y")
    assert again.code == 1
    assert again.stderr.strip() == "error: no batch 'gone'"


def test_running_documents_refuse_deletion_unless_forced(cli: Cli, corpus: Path) -> None:
    args = ["ingest", str(corpus), "-b", "held", "-p", "sleep", "-o", "seconds=30", "-c", "1"]
    proc = cli.start(*args)
    try:
        cli.wait_for("SELECT count(*) FROM documents WHERE status = 'running'", lambda n: n == 1)
        refused = cli("delete", "held", "-y")
        assert refused.code == 1
        assert "1 running documents" in refused.stderr and "force" in refused.stderr
        assert rows_of(cli, "held")["documents"] == 30

        forced = cli("delete", "held", "--force", "-y", "--json")
        assert forced.code == 0, forced.stderr
        assert forced.json()["cancelled"] == 1
        assert rows_of(cli, "held") == dict.fromkeys([*TABLES, "batches"], 0)
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def test_usage_needs_a_batch_or_unfinished(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0
    assert cli("delete").code == 2
    assert cli("delete", "b", "--unfinished").code == 2
    nothing = cli("delete", "--unfinished")
    assert nothing.code == 0 and "No interrupted deletions" in nothing.stdout


async def _submit(url: str, batch_id: str, count: int) -> None:
    async with await Ledger.open(settings_for(url)) as ledger:
        sources = [SourceSpec(f"/{batch_id}/{i}") for i in range(count)]
        await ledger.queue.submit(BatchSpec(id=batch_id, processor="noop"), sources)


def test_a_deletion_killed_half_way_is_hidden_and_finished_by_the_next_run(
    cli: Cli, db_url: str, sync_url: str
) -> None:
    asyncio.run(_submit(db_url, "big", 20_000))
    asyncio.run(_submit(db_url, "small", 3))
    env = {"LEDGER_DATABASE_URL": db_url, "LEDGER_DELETE_STEP_ROWS": "20"}

    def documents() -> int:
        return int(sql(sync_url, "SELECT count(*) FROM documents WHERE batch_id = 'big'")[0][0])

    proc = cli.start("delete", "big", "-y", env=env)
    try:
        left = 20_000
        for _ in range(3000):  # until some documents are gone (polled, no timing assumed)
            left = documents()
            if left < 20_000 or proc.poll() is not None:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    left = documents()
    assert 0 < left < 20_000, left  # killed half-way

    # Marked, hidden, and nothing of it can be claimed or shown.
    assert sql(sync_url, "SELECT deleting_at IS NOT NULL FROM batches WHERE id = 'big'")[0][0]
    listed = cli("batches", "--json", env=env)
    assert [b["id"] for b in listed.json()] == ["small"]
    status = cli("status", "big", env=env)
    assert status.code == 1 and "no batch 'big'" in status.stderr
    drained = cli("worker", "--burst", "--batch", "big", env=env)
    assert drained.code == 0, drained.stderr
    assert sql(sync_url, "SELECT count(*) FROM attempts WHERE batch_id = 'big'")[0][0] == 0

    finished = cli("delete", "--unfinished", "--json", env=env)
    assert finished.code == 0, finished.stderr
    [report] = finished.json()
    assert report["batch"] == "big" and report["rows"]["documents"] == left
    for table in ("documents", "events", "attempts"):
        query = f"SELECT count(*) FROM {table} WHERE batch_id NOT IN (SELECT id FROM batches)"
        assert sql(sync_url, query) == [(0,)], table
    assert sql(sync_url, "SELECT id FROM batches") == [("small",)]
    assert sql(sync_url, "SELECT count(*) FROM documents") == [(3,)]
