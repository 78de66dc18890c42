"""The real `ledger` command against PostgreSQL: migrate once, then every command works."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.db.migrate import head_revision
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for, sql

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


class PgCli:
    def __init__(self, url: str, home: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
                "LEDGER_DATABASE_URL": url,
                "LEDGER_HOME": str(home),  # must stay empty: no SQLite file is made
                "LEDGER_POLL_SECONDS": "0.05",
                "LEDGER_BACKOFF_BASE_SECONDS": "0.01",
                "LEDGER_BACKOFF_CAP_SECONDS": "0.05",
            }
        )
        self.env = env

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ledger", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


async def _submit(url: str, batch: str, n: int) -> None:
    async with await Ledger.open(settings_for(url)) as ledger:
        spec = BatchSpec(id=batch, processor="noop")
        await ledger.queue.submit(spec, [SourceSpec(f"/{batch}/{i}") for i in range(n)])


def test_every_command_against_postgres(empty_pg_url: str, tmp_path: Path) -> None:
    sync = str(make_url(empty_pg_url).set(drivername="postgresql+psycopg2"))
    home = tmp_path / "home"
    cli = PgCli(empty_pg_url, home)

    # Not migrated: commands refuse, saying what to do (PostgreSQL is never auto-migrated).
    refused = cli("batches")
    assert refused.returncode != 0
    assert "ledger db upgrade" in refused.stderr
    assert cli("db", "upgrade").returncode == 0
    current = cli("db", "current")
    assert current.returncode == 0, current.stderr
    head = head_revision()
    assert head is not None
    assert head in current.stdout
    assert sql(sync, "SELECT version_num FROM alembic_version") == [(head,)]

    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(40):
        (docs / f"d{i:03d}.txt").write_text(f"document {i}\n")
    ingested = cli("ingest", str(docs), "-p", "noop", "--batch", "one", "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert sql(sync, "SELECT n_done, n_pending FROM batches WHERE id = 'one'") == [(40, 0)]

    listing = cli.json("batches")
    assert [b["id"] for b in listing] == ["one"]
    status = cli.json("status", "one")
    assert json.dumps(status).count("40") >= 1

    # A batch whose documents all fail permanently, then retried, paused, resumed, cancelled.
    failing = cli(
        "ingest",
        str(docs),
        "-p",
        "sleep",
        "-o",
        "seconds=0",
        "-o",
        "permanent_rate=1",
        "--batch",
        "two",
        "--json",
    )
    assert failing.returncode == 1, failing.stderr  # some documents failed
    assert sql(sync, "SELECT n_failed FROM batches WHERE id = 'two'") == [(40,)]
    failures = cli.json("failures", "two")
    assert "sleep_permanent" in json.dumps(failures)
    # Every document failed: the batch is complete and cannot be paused until retried.
    refused = cli("pause", "two")
    assert refused.returncode == 1 and "complete" in refused.stderr
    assert cli.json("retry", "two")["retried"] == 40
    assert cli.json("pause", "two")["state"] == "paused"
    assert cli.json("resume", "two")["state"] == "active"
    assert cli.json("cancel", "two")["state"] == "cancelled"
    assert sql(sync, "SELECT n_cancelled, n_pending FROM batches WHERE id = 'two'") == [(40, 0)]

    # A separate `ledger worker` drains a batch another process submitted.
    asyncio.run(_submit(empty_pg_url, "three", 25))
    worker = cli("worker", "--burst")
    assert worker.returncode == 0, worker.stderr
    assert "25 done" in worker.stderr
    assert sql(sync, "SELECT n_done, completed_at IS NOT NULL FROM batches WHERE id = 'three'") == [
        (25, True)
    ]
    keys = cli("keys", "create", "--tenant", "acme")
    assert keys.returncode == 0, keys.stderr
    assert sql(sync, "SELECT tenant FROM api_keys") == [("acme",)]

    assert not (home / "ledger.db").exists()
