"""The batch page's Settings form changes name, priority and max attempts through PATCH, at
desktop and phone widths, and shows the server's refusal in the form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, open_browser

PAGE_FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(params=[1400, 390], ids=["desktop", "phone"])
def sized(
    request: pytest.FixtureRequest, playwright_driver: Any, tmp_path: Path
) -> Iterator[Browser]:
    opened = open_browser(playwright_driver, tmp_path, width=request.param, height=900)
    try:
        yield opened
    finally:
        opened.context.close()
    assert not opened.errors, opened.errors


def test_settings_change_through_patch(local_server: Served, sized: Browser) -> None:
    width = sized.page.viewport_size["width"] if sized.page.viewport_size else 0
    batch_id = f"settings-{width}"
    with local_server.client() as client:
        made = client.post(
            "/api/v1/batches", json={"id": batch_id, "processor": "noop", "max_attempts": 1}
        )
        assert made.status_code == 201, made.text
    sized.base = local_server.url
    sized.go(f"/batches/{batch_id}")
    page = sized.page
    meta = page.locator("#batch-meta")
    expect(meta).to_contain_text("up to 1 attempt ·")
    # The live line's text changes once the stream opens; its line is there from the start,
    # so nothing above the form moves under the click (it did on a phone, missing the summary).
    expect(page.locator("#live-status")).not_to_have_text("Connecting to live updates…")

    page.locator("#settings summary").click()
    expect(page.locator("#settings")).to_have_js_property("open", True)
    expect(page.get_by_label("Max attempts")).to_have_value("1")
    expect(page.get_by_label("Priority")).to_have_value("0")
    page.get_by_label("Name").fill("renamed")
    page.get_by_label("Priority").fill("5")
    page.get_by_label("Max attempts").fill("3")
    with page.expect_request(lambda r: r.method == "PATCH") as sent:
        page.get_by_role("button", name="Save settings").click()
    request = sent.value
    assert request.headers["x-requested-with"] == "fetch"
    assert request.headers["content-type"] == "application/json"
    assert request.post_data_json == {"name": "renamed", "priority": 5, "max_attempts": 3}
    expect(page.locator("#settings-saved")).to_have_text("Saved.")
    expect(page.locator("#batch-name")).to_have_text("renamed")
    expect(meta).to_contain_text("up to 3 attempts ·")
    with local_server.client() as client:
        batch = client.get(f"/api/v1/batches/{batch_id}").json()["batch"]
    assert (batch["name"], batch["priority"], batch["max_attempts"]) == ("renamed", 5, 3)

    # Out of range: the API's 422 is shown in the form and nothing changes.
    page.get_by_label("Priority").fill("2000000")
    page.get_by_role("button", name="Save settings").click()
    error = page.locator("#settings-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("priority")
    expect(page.locator("#settings-saved")).to_have_text("")
    assert page.evaluate(PAGE_FITS), page.evaluate("document.documentElement.scrollWidth")
    with local_server.client() as client:
        assert client.get(f"/api/v1/batches/{batch_id}").json()["batch"]["priority"] == 5
    sized.shot(f"batch-settings-{width}")
