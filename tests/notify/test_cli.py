"""`ledger webhooks` in a subprocess: add (allowed hosts only), list without secrets, test,
deliveries, remove."""

from __future__ import annotations

from pathlib import Path

from ledger.app import Ledger
from ledger.notify.sender import WebhookSender
from ledger.settings import Settings
from tests.cli.conftest import Cli
from tests.notify.receiver import Receiver

EXIT_USAGE = 2


async def test_webhooks_commands_from_add_to_remove(tmp_path: Path, receiver: Receiver) -> None:
    cli = Cli(tmp_path / "home")
    allowed = {"LEDGER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}
    refused = cli("webhooks", "add", "http://example.com/x", "--event", "batch.completed")
    assert refused.code == EXIT_USAGE and "not allowed" in refused.stderr
    added = cli(
        "webhooks", "add", receiver.url, "-e", "batch.completed", "-e", "batch.failures",
        "--failure-threshold", "0.25", "--tenant", "acme", "--json", env=allowed,
    )  # fmt: skip
    assert added.code == 0, added.stderr
    made = added.json()
    assert made["secret"].startswith("whsec_") and made["tenant"] == "acme"
    assert made["events"] == ["batch.completed", "batch.failures"]
    listed = cli("webhooks", "list", "--json")
    assert [h["id"] for h in listed.json()] == [made["id"]]
    assert "whsec_" not in listed.stdout and "whsec_" not in cli("webhooks", "list").stdout
    assert cli("webhooks", "test", made["id"]).code == 0
    (queued,) = cli("webhooks", "deliveries", made["id"], "--json").json()
    assert queued["event_type"] == "webhook.test" and queued["status"] == "pending"

    # What a running server's sender does with it.
    settings = Settings(home=cli.home, webhook_allowed_hosts=["127.0.0.1"])
    async with await Ledger.open(settings) as ledger:
        sender = WebhookSender(ledger)
        assert await sender.run_once() == 1
        await sender.close()
    (body,) = receiver.verified(made["secret"])
    assert body["type"] == "webhook.test" and receiver.received[0].id == queued["event_id"]
    shown = cli("webhooks", "deliveries", made["id"])
    assert "delivered" in shown.stdout and queued["event_id"] in shown.stdout

    assert cli("webhooks", "remove", made["id"]).code == 0
    assert cli("webhooks", "list", "--json").json() == []
    missing = cli("webhooks", "remove", made["id"])
    assert missing.code != 0 and "no webhook" in missing.stderr
