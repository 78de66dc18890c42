"""The Webhooks page lists the tenant's webhooks and their deliveries as the server sends
them (a real receiver on loopback, a batch run by the server's own workers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, start, stop
from tests.notify.receiver import Receiver


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(
        tmp_path_factory.mktemp("dash-hooks"),
        env={
            "LEDGER_AUTH": "off",
            "LEDGER_CONCURRENCY": "2",
            "LEDGER_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            "LEDGER_WEBHOOK_SCAN_SECONDS": "0.1",
        },
    )
    yield served
    stop(served)


def test_webhooks_page_shows_each_delivery(hook_server: Served, browser: Browser) -> None:
    receiver = Receiver().start()
    try:
        folder = hook_server.files("hooked", 2)
        with hook_server.client() as client:
            made = client.post(
                "/api/v1/webhooks", json={"url": receiver.url, "events": ["batch.completed"]}
            )
            assert made.status_code == 201, made.text
            batch = client.post(
                "/api/v1/batches",
                json={"id": "hooked", "processor": "noop", "paths": [str(folder)]},
            )
            assert batch.status_code == 201, batch.text
        hook_server.wait_complete("hooked")
        (got,) = receiver.wait_for(1)
        browser.base = hook_server.url
        browser.go("/webhooks")
        section = browser.page.locator(f'[data-webhook="{made.json()["id"]}"]')
        expect(section).to_contain_text(receiver.url)
        row = section.locator(f'tr[data-event="{got.id}"]')
        expect(row).to_contain_text("batch.completed")
        expect(row.locator(".delivery-status")).to_have_text("delivered")
        expect(row).to_contain_text("HTTP 200")
        expect(browser.page.locator("body")).not_to_contain_text("whsec_")
    finally:
        receiver.stop()
