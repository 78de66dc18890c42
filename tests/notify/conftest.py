"""Fixtures for the webhook tests: a loopback receiver, and a ledger allowed to call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from ledger.app import Ledger
from tests.conftest import FakeClock, settings_for
from tests.notify.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver().start()
    yield rec
    rec.stop()


@pytest.fixture
async def wledger(db_url: str, clock: FakeClock) -> AsyncIterator[Ledger]:
    """A ledger (hand-moved clock) whose webhooks may call 127.0.0.1 on any port."""
    settings = settings_for(
        db_url,
        webhook_allowed_hosts="127.0.0.1",
        webhook_backoff_base_seconds=60,
        webhook_timeout_seconds=10,
        webhook_stall_minutes=30,
        breaker_window=5,
        max_attempts=10,
    )
    led = await Ledger.open(settings, clock=clock)
    try:
        yield led
    finally:
        await led.close()
