"""Webhooks end to end on both backends: detection by scanning the ledger, signed POSTs to a
real loopback receiver (verified with ``standardwebhooks``), retries, tenant isolation."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.errors import NotAllowed, NotFound
from ledger.model import Outgoing, Webhook
from ledger.notify import outbox
from ledger.notify.sender import WebhookSender
from ledger.notify.service import Webhooks
from tests.conftest import FakeClock, settings_for, sql
from tests.notify.receiver import Receiver
from tests.notify.support import permanent, submit, sync_url, systemic, work


def _sync(ledger: Ledger) -> str:
    return sync_url(ledger.settings.url)


async def _hook_and_completed_batch(ledger: Ledger, url: str) -> tuple[Webhook, str]:
    """A batch.completed webhook, then a batch "b" that completes: one delivery owed."""
    made = await Webhooks(ledger.runner).create(url, ["batch.completed"], owner=None)
    await submit(ledger, "b", 1)
    await work(ledger, "b")
    return made


async def test_batch_completed_is_signed_and_sent_once_per_batch(
    wledger: Ledger, receiver: Receiver, clock: FakeClock
) -> None:
    await submit(wledger, "before", 1)
    await work(wledger, "before")  # completed before the webhook existed: not announced
    clock.advance(1)
    hook, secret = await Webhooks(wledger.runner).create(
        receiver.url, ["batch.completed"], owner=None
    )
    assert secret.startswith("whsec_")
    sender = WebhookSender(wledger)
    await submit(wledger, "b1", 3)
    await work(wledger, "b1", limit=2)
    assert await sender.run_once() == 0  # one document left: not complete
    await work(wledger, "b1")
    await submit(wledger, "b2", 1)
    await work(wledger, "b2")
    assert await sender.run_once() == 2
    assert await sender.run_once() == 0  # nothing new: no second event for the same batch
    await sender.close()
    bodies = receiver.verified(secret)
    assert sorted(b["data"]["batch_id"] for b in bodies) == ["b1", "b2"]
    assert {b["type"] for b in bodies} == {"batch.completed"}
    b1 = next(b for b in bodies if b["data"]["batch_id"] == "b1")
    assert b1["data"]["counts"]["done"] == 3 and b1["data"]["status"] == "complete"
    assert len({r.id for r in receiver.received}) == 2
    deliveries = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
    assert [d.status for d in deliveries] == ["delivered", "delivered"]
    assert all(d.attempts == 1 and d.last_status_code == 200 for d in deliveries)


async def test_scanning_again_never_makes_a_second_id(
    wledger: Ledger, receiver: Receiver, clock: FakeClock
) -> None:
    hook, _ = await _hook_and_completed_batch(wledger, receiver.url)
    sender = WebhookSender(wledger)
    assert await sender.scan() == 1
    assert await sender.scan() == 0
    # A crash after detecting: the row is gone from nowhere, but even a fresh scan that
    # finds the same fact derives the same id (the unique key would refuse another row).
    (first,) = sql(_sync(wledger), "SELECT event_id FROM webhook_deliveries")
    sql(_sync(wledger), "DELETE FROM webhook_deliveries")
    assert await sender.scan() == 1
    assert sql(_sync(wledger), "SELECT event_id FROM webhook_deliveries") == [first]
    assert hook.id


async def test_failed_answers_are_retried_with_the_same_id_until_acknowledged(
    wledger: Ledger, clock: FakeClock
) -> None:
    receiver = Receiver([500, 500]).start()
    try:
        hook, secret = await _hook_and_completed_batch(wledger, receiver.url)
        sender = WebhookSender(wledger)
        assert await sender.run_once() == 1
        (delivery,) = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
        assert delivery.status == "pending" and delivery.last_status_code == 500
        assert delivery.next_attempt_at is not None and delivery.next_attempt_at > clock.now
        assert await sender.run_once() == 0  # backing off: not due yet
        clock.advance(3600)
        assert await sender.run_once() == 1
        clock.advance(3600)
        assert await sender.run_once() == 1
        clock.advance(3600)
        assert await sender.run_once() == 0  # acknowledged: never sent again
        await sender.close()
    finally:
        receiver.stop()
    assert [r.status for r in receiver.received] == [500, 500, 200]
    assert len({r.id for r in receiver.received}) == 1
    assert len(receiver.verified(secret)) == 3
    (delivery,) = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
    assert delivery.status == "delivered" and delivery.attempts == 3
    attempts = sql(
        _sync(wledger),
        "SELECT attempt, status_code, next_attempt_at IS NULL FROM webhook_attempts "
        "ORDER BY attempt",
    )
    assert [tuple(a) for a in attempts] == [(1, 500, False), (2, 500, False), (3, 200, True)]


async def test_a_delivery_never_acknowledged_is_failed_after_a_day(
    wledger: Ledger, clock: FakeClock
) -> None:
    receiver = Receiver([503] * 1000).start()
    try:
        hook, _ = await _hook_and_completed_batch(wledger, receiver.url)
        sender = WebhookSender(wledger)
        for _ in range(200):
            await sender.run_once()
            (delivery,) = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
            if delivery.status != "pending":
                break
            clock.advance(1800)
        await sender.close()
    finally:
        receiver.stop()
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    # Backoff doubles from a minute up to an hour: a day holds a few dozen tries, not 200.
    assert 10 <= delivery.attempts <= 60
    assert delivery.finished_at is not None
    assert (delivery.finished_at - delivery.created_at).total_seconds() <= 86_400 + 3600


async def test_batch_paused_by_the_breaker_carries_its_reason(
    wledger: Ledger, receiver: Receiver
) -> None:
    _, secret = await Webhooks(wledger.runner).create(receiver.url, ["batch.paused"], owner=None)
    await submit(wledger, "b", 20)
    await work(wledger, "b", limit=5, error=lambda source: systemic())
    assert (await wledger.reads.batch("b")).state == "paused"
    sender = WebhookSender(wledger)
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0
    await sender.close()
    (body,) = receiver.verified(secret)
    assert body["type"] == "batch.paused"
    assert body["data"]["breaker"] is True
    assert (
        "circuit breaker: 5 of the last 5 attempts failed with http_503" in body["data"]["reason"]
    )


async def test_batch_failures_fire_once_above_the_webhook_threshold(
    wledger: Ledger, receiver: Receiver
) -> None:
    service = Webhooks(wledger.runner)
    low, secret = await service.create(
        receiver.url, ["batch.failures"], owner=None, failure_threshold=0.3
    )
    high, _ = await service.create(
        receiver.url + "/high", ["batch.failures"], owner=None, failure_threshold=0.9
    )
    await submit(wledger, "b", 10)
    sender = WebhookSender(wledger)
    await work(wledger, "b", limit=4, error=lambda s: permanent() if s.endswith(("/0",)) else None)
    assert await sender.run_once() == 0  # 1 of 4 failed: 0.25, not above 0.3
    await work(wledger, "b", limit=2, error=lambda s: permanent())
    assert await sender.run_once() == 1  # 3 of 6: 0.5
    await work(wledger, "b", error=lambda s: permanent())
    assert await sender.run_once() == 0  # once per batch, though the share grew to 0.7
    await sender.close()
    (body,) = receiver.verified(secret)
    assert body["type"] == "batch.failures"
    assert body["data"]["failed_share"] == 0.5 and body["data"]["threshold"] == 0.3
    assert await service.deliveries(high.id, owner=None) == []  # 0.7 never above 0.9
    assert len(await service.deliveries(low.id, owner=None)) == 1


async def test_batch_stalled_when_nothing_finishes_for_the_set_minutes(
    wledger: Ledger, receiver: Receiver, clock: FakeClock
) -> None:
    _, secret = await Webhooks(wledger.runner).create(receiver.url, ["batch.stalled"], owner=None)
    await submit(wledger, "b", 5)
    sender = WebhookSender(wledger)
    clock.advance(29 * 60)
    assert await sender.run_once() == 0  # due for 29 minutes: not yet
    clock.advance(2 * 60)
    assert await sender.run_once() == 1
    clock.advance(3600)
    assert await sender.run_once() == 0  # the same stall: one event
    await work(wledger, "b", limit=1)  # something finishes: the stall is over
    clock.advance(10 * 60)
    assert await sender.run_once() == 0
    clock.advance(25 * 60)
    assert await sender.run_once() == 1  # a second stall, a second event
    await sender.close()
    first, second = receiver.verified(secret)
    assert first["type"] == second["type"] == "batch.stalled"
    assert first["data"]["last_finished_at"] is None
    assert second["data"]["last_finished_at"] is not None
    assert receiver.received[0].id != receiver.received[1].id


async def test_a_host_not_allowed_is_refused_and_never_called(
    db_url: str, receiver: Receiver, clock: FakeClock
) -> None:
    settings = settings_for(db_url, webhook_allowed_hosts="hooks.example.com,*.example.org")
    async with await Ledger.open(settings, clock=clock) as ledger:
        for url in (
            receiver.url,
            "http://example.org/x",  # the wildcard covers subdomains only
            "ftp://hooks.example.com/x",
            "http://user:pw@hooks.example.com/x",
        ):
            with pytest.raises(NotAllowed):
                await Webhooks(ledger.runner).create(url, ["batch.completed"], owner=None)
        assert await Webhooks(ledger.runner).all(owner=None) == []
    # Allowed when it was created, no longer when it is sent: the sender checks again.
    async with await Ledger.open(
        settings_for(db_url, webhook_allowed_hosts=f"127.0.0.1:{receiver.port}"), clock=clock
    ) as ledger:
        hook, _ = await Webhooks(ledger.runner).create(
            receiver.url, ["batch.completed"], owner=None
        )
        await submit(ledger, "b", 1)
        await work(ledger, "b")
    async with await Ledger.open(settings, clock=clock) as ledger:
        sender = WebhookSender(ledger)
        assert await sender.run_once() == 1
        await sender.close()
        (delivery,) = await Webhooks(ledger.runner).deliveries(hook.id, owner=None)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert "not allowed" in (delivery.last_error or "")
    assert receiver.received == []


async def test_a_webhook_hears_only_its_own_tenants_batches(
    wledger: Ledger, receiver: Receiver
) -> None:
    service = Webhooks(wledger.runner)
    hook, secret = await service.create(receiver.url, ["batch.completed"], owner="acme")
    await submit(wledger, "acme-b", 1, owner="acme")
    await submit(wledger, "globex-b", 1, owner="globex")
    await submit(wledger, "local-b", 1)
    for batch_id in ("acme-b", "globex-b", "local-b"):
        await work(wledger, batch_id)
    sender = WebhookSender(wledger)
    assert await sender.run_once() == 1
    await sender.close()
    (body,) = receiver.verified(secret)
    assert body["data"]["batch_id"] == "acme-b"
    # Another tenant neither sees, reads, tests nor removes it.
    assert await service.all(owner="globex") == []
    for call in (
        service.get(hook.id, owner="globex"),
        service.deliveries(hook.id, owner="globex"),
        service.test(hook.id, owner="globex"),
        service.remove(hook.id, owner="globex"),
    ):
        with pytest.raises(NotFound):
            await call
    assert [h.id for h in await service.all(owner="acme")] == [hook.id]
    await service.remove(hook.id, owner="acme")
    assert await service.all(owner=None) == []
    assert sql(_sync(wledger), "SELECT count(*) FROM webhook_deliveries") == [(0,)]


async def test_a_redirect_is_not_followed_and_not_an_acknowledgement(
    wledger: Ledger, clock: FakeClock
) -> None:
    receiver = Receiver([307]).start()
    try:
        hook, _ = await _hook_and_completed_batch(wledger, receiver.url)
        sender = WebhookSender(wledger)
        assert await sender.run_once() == 1
        await sender.close()
    finally:
        receiver.stop()
    assert [r.status for r in receiver.received] == [307]  # the redirect target never called
    (delivery,) = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
    assert delivery.status == "pending" and delivery.last_status_code == 307


async def test_a_claimed_delivery_whose_sender_died_is_sent_after_its_lease(
    wledger: Ledger, receiver: Receiver, clock: FakeClock
) -> None:
    hook, secret = await _hook_and_completed_batch(wledger, receiver.url)
    dead = WebhookSender(wledger)
    await dead.scan()

    async def claim_and_die(conn: AsyncConnection, now: datetime) -> list[Outgoing]:
        return await outbox.claim(conn, now=now, lease=dead.lease, limit=10)

    (lost,) = await wledger.runner.run(claim_and_die)  # the state a kill -9 mid-POST leaves
    sender = WebhookSender(wledger)
    assert await sender.run_once() == 0  # still leased to the dead sender
    clock.advance(dead.lease.total_seconds() + 1)
    assert await sender.run_once() == 1
    await sender.close()
    (got,) = receiver.received
    assert got.id == lost.event_id
    assert len(receiver.verified(secret)) == 1
    (delivery,) = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
    assert delivery.status == "delivered" and delivery.attempts == 1


async def test_two_senders_never_post_the_same_delivery(
    wledger: Ledger, receiver: Receiver, clock: FakeClock
) -> None:
    hook, _ = await Webhooks(wledger.runner).create(receiver.url, ["batch.completed"], owner=None)
    for _ in range(40):
        await Webhooks(wledger.runner).test(hook.id, owner=None)
    async with await Ledger.open(wledger.settings, clock=clock) as other:
        first, second = WebhookSender(wledger), WebhookSender(other)
        counts = await asyncio.gather(first.run_once(), second.run_once())
        await first.close()
        await second.close()
    assert sum(counts) == 40
    ids = [r.id for r in receiver.received]
    assert len(ids) == 40 and len(set(ids)) == 40
    deliveries = await Webhooks(wledger.runner).deliveries(hook.id, owner=None)
    assert {d.status for d in deliveries} == {"delivered"}
    assert {d.attempts for d in deliveries} == {1}


async def test_a_send_goes_to_the_address_that_was_checked(
    db_url: str, clock: FakeClock, receiver: Receiver
) -> None:
    """DNS rebinding: the name is resolved once, checked, and the POST goes to that address
    with the name in Host. A second resolution (the one an HTTP client would make) could
    answer a metadata or internal address; here it would answer nothing at all, since the
    name exists only in this test's resolver."""
    answers: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        answers.append(host)
        return ["127.0.0.1"] if len(answers) == 1 else ["169.254.169.254"]

    settings = settings_for(db_url, webhook_allowed_hosts="hooks.example.test")
    led = await Ledger.open(settings, clock=clock)
    try:
        url = f"http://hooks.example.test:{receiver.port}/hook"
        _, secret = await Webhooks(led.runner).create(url, ["batch.completed"], owner=None)
        await submit(led, "b", 1)
        await work(led, "b")
        sender = WebhookSender(led, resolver=rebinding)
        assert await sender.run_once() == 1
        await sender.close()
    finally:
        await led.close()
    assert answers == ["hooks.example.test"]
    (received,) = receiver.received
    assert received.headers["host"] == f"hooks.example.test:{receiver.port}"
    assert [b["data"]["batch_id"] for b in receiver.verified(secret)] == ["b"]
