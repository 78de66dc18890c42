"""Read and steering commands, and the schema commands, checked against SQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.settings import Settings
from tests.cli.conftest import Cli


def ingest(cli: Cli, corpus: Path, *extra: str) -> str:
    result = cli("ingest", str(corpus), "-p", "noop", "--json", *extra)
    assert result.code in (0, 1), result.stderr
    return str(result.json()["batch"]["id"])


def test_fresh_home_is_created_and_migrated(cli: Cli) -> None:
    assert not cli.db.exists()
    # Read commands create nothing: there is nothing to read yet.
    refused = cli("batches")
    assert refused.code == 2, refused.stderr
    assert f"no ledger database at {cli.db}" in refused.stderr
    assert not cli.home.exists()
    assert cli("db", "upgrade").code == 0
    result = cli("batches")
    assert result.code == 0, result.stderr
    assert "No batches yet" in result.stdout
    assert cli.db.exists()
    assert cli.scalar("SELECT count(*) FROM alembic_version") == 1
    assert cli("batches", "--json").json() == []


def test_batches_and_status_json_match_sql(cli: Cli, corpus: Path, tmp_path: Path) -> None:
    first = ingest(cli, corpus)
    other = tmp_path / "other"
    other.mkdir()
    (other / "one.txt").write_text("1")
    second = ingest(cli, other)

    listing = cli("batches", "--json")
    assert listing.code == 0, listing.stderr
    rows = listing.json()
    assert [b["id"] for b in rows] == [second, first]  # newest first
    for b in rows:
        sql = dict(
            cli.sql("SELECT status, count(*) FROM documents WHERE batch_id = ? GROUP BY 1", b["id"])
        )
        assert {k: v for k, v in b["counts"].items() if v} == sql
        assert b["total"] == sum(sql.values())
        assert b["created_at"].endswith("+00:00")
    assert len(cli("batches", "--json", "--limit", "1").json()) == 1

    status = cli("status", first, "--json")
    assert status.code == 0, status.stderr
    data = status.json()
    assert data["id"] == first
    assert data["counts"]["done"] == 30
    assert data["complete"] is True
    assert data["percent"] == 100.0
    assert data["completed_at"] is not None
    assert set(data) >= {"rate_per_second", "eta_seconds", "started_at", "last_finished_at"}

    human = cli("status", first)
    assert human.code == 0
    assert first in human.stdout
    assert "complete" in human.stdout
    table = cli("batches")
    assert first in table.stdout
    assert second in table.stdout


async def _submit_unprocessed(cli: Cli, batch_id: str, count: int) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{cli.db}", home=cli.home)
    async with await Ledger.open(settings) as ledger:
        spec = BatchSpec(id=batch_id, processor="noop")
        await ledger.queue.submit(spec, [SourceSpec(f"/{batch_id}/{i}") for i in range(count)])


def test_pause_resume_cancel(cli: Cli, corpus: Path) -> None:
    done_id = ingest(cli, corpus)
    assert cli("retry", done_id, "--json").json()["retried"] == 0
    # Every document finished: pausing or cancelling it is refused, and changes nothing.
    for args, done in ((["pause"], "paused"), (["cancel", "-y"], "cancelled")):
        refused = cli(args[0], done_id, *args[1:])
        assert refused.code == 1
        assert refused.stderr.strip().splitlines() == [
            f"error: batch {done_id!r} is complete (every document finished): it cannot be {done}"
        ]
    assert cli.scalar("SELECT state FROM batches WHERE id = ?", done_id) == "active"

    # A batch with work left: submitted, not yet processed.
    batch_id = "waiting"
    asyncio.run(_submit_unprocessed(cli, batch_id, 3))
    paused = cli("pause", batch_id, "--json")
    assert paused.code == 0, paused.stderr
    assert paused.json()["state"] == "paused"
    assert cli.scalar("SELECT state FROM batches WHERE id = ?", batch_id) == "paused"

    resumed = cli("resume", batch_id)
    assert resumed.code == 0
    assert "is active" in resumed.stdout
    assert cli.scalar("SELECT state FROM batches WHERE id = ?", batch_id) == "active"

    cancelled = cli("cancel", batch_id, "--json")
    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json()["state"] == "cancelled"
    assert cli.scalar("SELECT state FROM batches WHERE id = ?", batch_id) == "cancelled"

    # A cancelled batch cannot be resumed, paused or cancelled again, and the same ingest
    # says so in one line.
    for action in ("resume", "pause", "cancel"):
        again = cli(action, batch_id)
        assert again.code == 1
        assert len(again.stderr.strip().splitlines()) == 1
        assert "is cancelled" in again.stderr
    rerun = cli("ingest", str(corpus), "-b", batch_id, "-p", "noop")
    assert rerun.code == 1
    assert "cancelled" in rerun.stderr
    assert "Traceback" not in rerun.stderr


def test_cancel_cancels_pending_documents(cli: Cli, corpus: Path) -> None:
    # One slow document at a time: the rest are still pending when the batch is cancelled.
    batch_id = "held"
    args = ["ingest", str(corpus), "-b", batch_id, "-p", "sleep", "-o", "seconds=5", "-c", "1"]
    proc = cli.start(*args)
    cli.wait_for("SELECT count(*) FROM documents WHERE status = 'running'", lambda n: n == 1)
    assert cli("cancel", batch_id, "-y").code == 0
    proc.communicate(timeout=30)
    assert proc.returncode == 1
    rows = dict(cli.sql("SELECT status, count(*) FROM documents GROUP BY 1"))
    assert rows.get("pending", 0) == 0
    assert rows["cancelled"] >= 29


def test_db_commands(cli: Cli) -> None:
    current = cli("db", "current", "--json")
    assert current.code == 1  # not migrated yet
    data = current.json()
    assert data["current"] is None
    assert data["up_to_date"] is False

    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0, upgraded.stderr
    head = cli("db", "current", "--json").json()
    assert head["up_to_date"] is True
    assert head["current"] == cli.scalar("SELECT version_num FROM alembic_version")
    assert "already at" in cli("db", "upgrade").stdout

    history = cli("db", "history", "--json").json()
    assert history[0]["revision"] == head["head"]

    down = cli("db", "downgrade", "base", "--yes")
    assert down.code == 0, down.stderr
    assert cli.sql("SELECT name FROM sqlite_master WHERE name = 'batches'") == []
    # Any command on the SQLite default migrates it again.
    assert cli("batches").code == 0
    assert cli("db", "current", "--json").json()["up_to_date"] is True


def test_keys_create_list_revoke(cli: Cli) -> None:
    created = cli("keys", "create", "--tenant", "acme", "--json")
    assert created.code == 0, created.stderr
    data = created.json()
    assert data["tenant"] == "acme"
    assert len(data["key"]) >= 32
    # Only a hash of the key is stored, never the key itself.
    stored = cli.sql("SELECT * FROM api_keys")
    assert stored
    assert all(data["key"] not in str(value) for row in stored for value in row)
    listing = cli("keys", "list", "--json").json()
    assert [(k["id"], k["tenant"], k["revoked_at"]) for k in listing] == [
        (data["id"], "acme", None)
    ]
    assert data["key"].startswith(listing[0]["prefix"])
    assert listing[0]["role"] == data["role"] == "tenant"
    revoked = cli("keys", "revoke", data["id"])
    assert revoked.code == 0, revoked.stderr
    assert cli("keys", "list", "--json").json()[0]["revoked_at"] is not None
    operator = cli("keys", "create", "--tenant", "ops", "--role", "operator", "--json")
    assert operator.code == 0, operator.stderr
    assert operator.json()["role"] == "operator"
    assert cli.sql("SELECT role FROM api_keys WHERE id = ?", operator.json()["id"]) == [
        ("operator",)
    ]
    refused = cli("keys", "create", "--tenant", "x", "--role", "root")
    assert refused.code != 0 and not refused.stdout
    unknown = cli("keys", "revoke", "no-such-key")
    assert unknown.code == 1
    assert len(unknown.stderr.strip().splitlines()) == 1


def test_serve_answers_on_loopback_and_stops_on_sigterm(cli: Cli) -> None:
    import signal
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = cli.start("serve", "--port", str(port), "--no-workers")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json()["database"] == "ok"
    finally:
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises the signal so the exit status tells it.
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log
    assert "Traceback" not in log


def test_ingest_with_the_real_pipeline_then_search(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leases.md").write_text(
        "# Leases\n\nA lease expires when the worker stops renewing it.\n", encoding="utf-8"
    )
    (docs / "backoff.txt").write_text("Retries wait longer each time: backoff.\n", "utf-8")
    (docs / "page.html").write_text(
        "<html><body><nav>menu</nav><p>Chunks carry page numbers.</p></body></html>", "utf-8"
    )
    first = cli("ingest", str(docs), "--json")
    assert first.code == 0, first.stderr
    assert first.json()["batch"]["counts"]["done"] == 3
    assert cli.scalar("SELECT count(*) FROM chunks") >= 3

    found = cli("search", "lease expires", "-k", "2", "--json")
    assert found.code == 0, found.stderr
    hits = found.json()
    assert hits[0]["source"].endswith("leases.md")
    assert "«" in hits[0]["snippet"]
    human = cli("search", "backoff")
    assert "backoff.txt" in human.stdout

    # The same command again: nothing is processed twice.
    again = cli("ingest", str(docs), "--json")
    assert again.code == 0, again.stderr
    assert cli.sql("SELECT outcome, count(*) FROM attempts GROUP BY 1") == [("done", 3)]
