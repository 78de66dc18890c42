"""A `ledger serve` killed (SIGKILL) while it posts a webhook: after a restart the same
event is posted again with the same webhook-id, and acknowledged exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from ledger.app import Ledger
from ledger.notify.service import Webhooks
from tests.conftest import settings_for, sql
from tests.helpers.server import free_port, spawn, stop
from tests.notify.receiver import Receiver
from tests.notify.support import submit, work
from tests.notify.support import sync_url as _sync

REPO = Path(__file__).resolve().parents[2]


async def _prepare(db_url: str, url: str) -> str:
    """A webhook and a batch that completed after it: one delivery owed. Returns the secret."""
    async with await Ledger.open(settings_for(db_url, webhook_allowed_hosts="127.0.0.1")) as led:
        _, secret = await Webhooks(led.runner).create(url, ["batch.completed"], owner=None)
        await submit(led, "b", 2)
        await work(led, "b")
    return secret


def test_a_delivery_survives_a_sigkill_of_the_server_with_the_same_id(
    db_url: str, tmp_path: Path
) -> None:
    receiver = Receiver([0]).start()  # the first POST hangs until released
    try:
        secret = asyncio.run(_prepare(db_url, receiver.url))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")},
            "PYTHONPATH": str(REPO),
            "LEDGER_HOME": str(tmp_path / "home"),
            "LEDGER_DATABASE_URL": db_url,
            "LEDGER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "LEDGER_WEBHOOK_SCAN_SECONDS": "0.2",
            "LEDGER_WEBHOOK_TIMEOUT_SECONDS": "2",
        }
        port = free_port()
        args = ["-m", "ledger", "serve", "--no-workers", "--port", str(port)]
        first = spawn(args, env=env, log=tmp_path / "first.log", cwd=tmp_path, port=port)
        receiver.wait_for(1)  # the server is posting it now
        first.send_signal(signal.SIGKILL)
        first.wait()
        receiver.release()  # the held request ends on a connection nobody listens to
        rows = sql(_sync(db_url), "SELECT status, attempts, lease_token FROM webhook_deliveries")
        assert [(r[0], r[1], r[2] is not None) for r in rows] == [("pending", 0, True)]

        second = spawn(args, env=env, log=tmp_path / "second.log", cwd=tmp_path, port=port)
        try:
            deadline = time.monotonic() + 90  # the dead sender's lease must run out first
            while time.monotonic() < deadline:
                status = sql(_sync(db_url), "SELECT status FROM webhook_deliveries")
                if status == [("delivered",)]:
                    break
                time.sleep(0.2)
            assert status == [("delivered",)]
        finally:
            stop(second, tmp_path / "second.log")
    finally:
        receiver.stop()
    got = receiver.received
    assert len(got) == 2 and got[0].id == got[1].id
    assert [r.status for r in got] == [0, 200]  # held (no answer reached anyone), then 200
    bodies = receiver.verified(secret)
    assert bodies[0] == bodies[1] and bodies[0]["data"]["batch_id"] == "b"
    assert sql(_sync(db_url), "SELECT attempt, status_code FROM webhook_attempts") == [(1, 200)]
