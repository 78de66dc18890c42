"""The workers page lists the server's own worker live, and a batch whose processor no
live worker can run says that it waits for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, start, stop

# Callers may name 'gone', but its module exists nowhere: no worker can run it.
PROCESSORS = "gone=no_such_module_anywhere:process"


@pytest.fixture(scope="module")
def routing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = start(
        tmp_path_factory.mktemp("dash-workers"),
        env={"LEDGER_AUTH": "off", "LEDGER_PROCESSORS": PROCESSORS},
    )
    yield served
    stop(served)


def test_workers_page_lists_the_servers_worker(routing_server: Served, browser: Browser) -> None:
    browser.base = routing_server.url
    browser.go("/workers")
    row = browser.page.locator("#workers tbody tr").first
    expect(row).to_contain_text("alive")
    expect(row).to_contain_text(f":{routing_server.proc.pid}:")
    expect(row).to_contain_text("noop")
    expect(browser.page.get_by_role("link", name="Workers")).to_have_attribute(
        "aria-current", "page"
    )


def test_a_batch_nobody_can_run_says_it_waits(
    routing_server: Served, browser: Browser, tmp_path: Path
) -> None:
    browser.base = routing_server.url
    folder = routing_server.files("waits", 2)
    with routing_server.client() as client:
        client.post(
            "/api/v1/batches", json={"id": "waits", "processor": "gone", "paths": [str(folder)]}
        ).raise_for_status()
    browser.go("/batches/waits")
    note = browser.page.locator("#waiting-note")
    expect(note).to_be_visible()
    expect(note).to_have_text("waiting: no worker can run processor 'gone'")
    expect(browser.page.locator('[data-count="failed"]')).to_have_text("0")
