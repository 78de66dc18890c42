"""The batch page's Delete button: a confirmation dialog that can be dismissed, a refusal
shown while documents run, and force cancelling them; the batch is gone from the API."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served


def make(served: Served, batch_id: str, folder: Path, options: dict[str, object]) -> None:
    with served.client() as client:
        created = client.post(
            "/api/v1/batches",
            json={"id": batch_id, "processor": "sleep", "options": options, "paths": [str(folder)]},
        )
        assert created.status_code == 201, created.text


def status_of(served: Served, batch_id: str) -> int:
    with served.client() as client:
        return client.get(f"/api/v1/batches/{batch_id}").status_code


def test_delete_asks_first_then_removes_the_batch(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("to-delete", 3)
    make(local_server, "delete-1", folder, {"seconds": 0})
    local_server.wait_complete("delete-1")
    browser.go("/batches/delete-1")
    page = browser.page
    dialog = page.locator("#delete-dialog")
    expect(dialog).to_be_hidden()

    page.get_by_role("button", name="Delete batch").click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("cannot be undone")
    browser.shot("batch-delete-dialog")
    page.get_by_role("button", name="Keep the batch").click()
    expect(dialog).to_be_hidden()
    assert status_of(local_server, "delete-1") == 200  # kept

    page.get_by_role("button", name="Delete batch").click()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator('tr[data-batch="delete-1"]')).to_have_count(0)
    assert status_of(local_server, "delete-1") == 404
    assert all(p.exists() for p in folder.iterdir())  # the server files it was made from stay


def test_running_documents_are_refused_until_force_is_ticked(
    local_server: Served, browser: Browser
) -> None:
    browser.base = local_server.url
    make(local_server, "delete-busy", local_server.files("busy", 6), {"seconds": 30})
    browser.go("/batches/delete-busy")
    page = browser.page
    expect(page.locator('[data-count="running"]')).not_to_have_text("0", timeout=30_000)

    page.get_by_role("button", name="Delete batch").click()
    dialog = page.locator("#delete-dialog")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#delete-error")).to_contain_text("running")
    assert status_of(local_server, "delete-busy") == 200

    dialog.get_by_label("Also cancel documents running now").check()
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page).to_have_url(re.compile(r"/$"))
    assert status_of(local_server, "delete-busy") == 404
