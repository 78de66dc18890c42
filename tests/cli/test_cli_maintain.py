"""``ledger maintain`` and the maintenance loop of ``ledger worker``, as real subprocesses."""

from __future__ import annotations

import signal

from tests.cli.conftest import Cli

STEPS = {"leases_rescued", "uploads_expired", "upload_files_removed", "events_pruned"}


def test_maintain_once_json_runs_a_pass_and_records_it(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0
    result = cli("maintain", "--once", "--json")
    assert result.code == 0, result.stderr
    body = result.json()
    assert body["ran"] is True
    run = body["run"]
    assert run["runner"].startswith("maintain ") and run["error"] is None
    assert set(run["counts"]) >= STEPS and run["finished_at"] >= run["started_at"]
    assert cli.sql("SELECT id, runner FROM maintenance_runs") == [(run["id"], run["runner"])]
    # --last shows it again and runs nothing.
    last = cli("maintain", "--last", "--json")
    assert last.code == 0 and last.json() == {"ran": False, "run": run}
    assert cli.scalar("SELECT count(*) FROM maintenance_runs") == 1
    text = cli("maintain", "--last")
    assert text.code == 0 and f"Maintenance run {run['id']}" in text.stdout


def test_retention_off_skips_the_pruning_steps(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0
    result = cli("maintain", "--once", "--json", env={"LEDGER_RETENTION_DAYS": "off"})
    assert result.code == 0, result.stderr
    assert "events_pruned" not in result.json()["run"]["counts"]
    bad = cli("maintain", "--once", env={"LEDGER_RETENTION_DAYS": "-3"})
    assert bad.code == 2 and "LEDGER_RETENTION_DAYS" in bad.stderr


def test_maintain_on_a_missing_database_creates_nothing(cli: Cli) -> None:
    result = cli("maintain", "--once")
    assert result.code == 2 and "no ledger database" in result.stderr
    assert not cli.db.exists()


def test_a_long_running_worker_runs_maintenance(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0
    worker = cli.start("worker", env={"LEDGER_MAINTENANCE_INTERVAL_SECONDS": "0.2"})
    try:
        # A pass at start, then one every interval: several records appear.
        cli.wait_for(
            "SELECT count(*) FROM maintenance_runs WHERE runner LIKE 'worker %'",
            lambda n: n >= 2,
            timeout=60,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=60)
    assert worker.returncode == 0
    # It let go of the lease when it stopped: the next runner is not kept waiting.
    assert cli.sql("SELECT owner FROM maintenance") == [(None,)]
    assert cli("maintain", "--once", "--json").json()["ran"] is True
