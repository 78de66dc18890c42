"""What a worker process pays before its first claim: opening a ledger checks the schema
without Alembic, and the worker loads no library it does not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.db.models import HEAD_REVISION
from ledger.db.runner import SchemaOutOfDate
from tests.conftest import settings_for, sql

REPO = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: the test process has imported everything already.
WORKER_START = """
import asyncio, json, sys

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.settings import Settings
from ledger.worker.runtime import Worker


async def main() -> None:
    async with await Ledger.open(Settings(database_url=sys.argv[1])) as ledger:
        await ledger.queue.submit(BatchSpec(processor="noop"), [SourceSpec("/startup/doc")])
        stats = await Worker(ledger).run(burst=True)
        assert stats.done == 1, stats


asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""

# Libraries a plain worker has no use for: migrations, vectors, child-process memory, the
# API, metrics nobody can scrape and the terminal. Each one loaded at start is time before
# the first claim.
NOT_LOADED = ("alembic", "numpy", "psutil", "litestar", "prometheus_client", "rich", "typer")


def test_a_starting_worker_loads_none_of_the_libraries_it_does_not_use(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = dict(os.environ, LEDGER_HOME=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER_START, sqlite_url],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    modules = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert "ledger.app" in modules
    loaded = [name for name in NOT_LOADED if name in modules]
    assert loaded == []


async def test_opening_an_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    with pytest.raises(SchemaOutOfDate) as caught:
        await Ledger.open(settings_for(url))
    assert caught.value.message == (
        f"database schema is at nothing, this version needs {HEAD_REVISION}: "
        "run `ledger db upgrade`"
    )


async def test_opening_a_database_at_another_revision_says_what_to_do(sqlite_url: str) -> None:
    sync = sqlite_url.replace("sqlite+aiosqlite", "sqlite")
    sql(sync, "UPDATE alembic_version SET version_num = '0005'")
    with pytest.raises(SchemaOutOfDate) as caught:
        await Ledger.open(settings_for(sqlite_url))
    assert caught.value.message == (
        f"database schema is at 0005, this version needs {HEAD_REVISION}: run `ledger db upgrade`"
    )
    sql(sync, f"UPDATE alembic_version SET version_num = '{HEAD_REVISION}'")
    await (await Ledger.open(settings_for(sqlite_url))).close()
