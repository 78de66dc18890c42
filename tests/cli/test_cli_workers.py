"""``ledger workers``: real worker processes, one stopped cleanly and one killed with SIGKILL.

The killed one never writes ``stopped_at``; once its heartbeat is older than the lease time
it is listed ``lost``. The test polls the listing instead of timing anything.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from ledger.settings import Settings
from tests.cli.conftest import Cli

# A short lease (heartbeat every third of it) so that a killed worker is lost soon.
SHORT_LEASE = {"LEDGER_LEASE_SECONDS": "1.5"}


def _listing(cli: Cli) -> dict[int, dict[str, Any]]:
    result = cli("workers", "--json", env=SHORT_LEASE)
    assert result.code == 0, result.stderr
    return {w["pid"]: w for w in result.json()}


def _wait_state(cli: Cli, pid: int, state: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = _listing(cli).get(pid)
        if seen is not None and seen["state"] == state:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} never became {state} (last seen {seen})")


def test_listing_shows_alive_stopped_and_a_killed_worker_lost(cli: Cli, db_url: str) -> None:
    """On SQLite and on PostgreSQL (the server's clock judges the heartbeats there)."""
    cli.env["LEDGER_DATABASE_URL"] = db_url
    assert cli("db", "upgrade").code == 0
    assert cli("workers").stdout.startswith("No workers yet.")
    victim = cli.start("worker", "-c", "3", env=SHORT_LEASE)
    survivor = cli.start("worker", "-p", "tests.helpers.poison:kill_async", env=SHORT_LEASE)
    try:
        alive = _wait_state(cli, victim.pid, "alive")
        assert alive["concurrency"] == 3 and alive["in_flight"] == 0
        assert {"noop", "sleep", "ingest"} <= set(alive["processors"])
        assert alive["stopped_at"] is None and alive["host"]
        other = _wait_state(cli, survivor.pid, "alive")
        assert "tests.helpers.poison:kill_async" in other["processors"]
        text = cli("workers", env=SHORT_LEASE).stdout
        assert "alive" in text and "IN FLIGHT" in text

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        lost = _wait_state(cli, victim.pid, "lost")
        assert lost["stopped_at"] is None  # nothing was written by the dead process
        assert cli("workers", "--state", "lost", "--json", env=SHORT_LEASE).json() == [lost]
        assert _listing(cli)[survivor.pid]["state"] == "alive"  # still heartbeating

        survivor.send_signal(signal.SIGTERM)
        survivor.communicate(timeout=30)
        assert survivor.returncode == 0
        stopped = _wait_state(cli, survivor.pid, "stopped", timeout=5)
        assert stopped["stopped_at"] is not None
    finally:
        for proc in (victim, survivor):
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)


async def _submit(cli: Cli, batch_id: str, processor: str) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{cli.db}", home=cli.home)
    async with await Ledger.open(settings) as ledger:
        spec = BatchSpec(id=batch_id, processor=processor)
        await ledger.queue.submit(spec, [SourceSpec(f"/{batch_id}/{i}") for i in range(2)])


def test_status_says_a_batch_waits_for_a_worker_that_can_run_it(cli: Cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").code == 0
    asyncio.run(_submit(cli, "waits", "elsewhere:process"))
    shown = cli("status", "waits")
    assert shown.code == 0, shown.stderr
    assert "waiting: no worker can run processor 'elsewhere:process'" in shown.stdout
    assert cli("status", "waits", "--json").json()["waiting_for_processor"] == ("elsewhere:process")
    # A worker told to run it, where it cannot be imported: it starts without it, and the
    # batch goes on waiting, untouched.
    worker = cli.start("worker", "-p", "elsewhere:process", env=SHORT_LEASE)
    try:
        alive = _wait_state(cli, worker.pid, "alive")
        assert "elsewhere:process" not in alive["processors"]
        waiting = cli("status", "waits", "--json", env=SHORT_LEASE).json()
        assert waiting["waiting_for_processor"] == "elsewhere:process"
        assert waiting["counts"]["pending"] == 2
        assert cli.scalar("SELECT count(*) FROM attempts") == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    assert "processor elsewhere:process left out" in stderr

    # Where it can be imported, a worker runs it; then nothing waits.
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "elsewhere.py").write_text("def process(doc):\n    return {'ok': 1}\n")
    here = {"PYTHONPATH": f"{code_dir}:{cli.env['PYTHONPATH']}"}
    ran = cli("worker", "--burst", "-p", "elsewhere:process", env=here)
    assert ran.code == 0, ran.stderr
    done = cli("status", "waits", "--json").json()
    assert done["waiting_for_processor"] is None
    assert done["counts"]["done"] == 2
