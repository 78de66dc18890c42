"""Creating a batch from server paths and watching it run, fail, retry, pause and resume."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, HeldRequests, Served

# Every value the page's progress bar took, recorded in the page as it changes.
RECORD_PROGRESS = """
window.__seen = [];
new MutationObserver(() => {
  const bar = document.getElementById("progress");
  if (bar && bar.hasAttribute("aria-valuenow")) {
    const v = Number(bar.getAttribute("aria-valuenow"));
    if (window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v);
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["aria-valuenow"]});
"""


def new_batch(
    b: Browser, *, batch_id: str, processor: str, options: dict[str, object], paths: list[str]
) -> None:
    b.go("/new")
    b.page.get_by_label("Batch id").fill(batch_id)
    b.page.get_by_label("Processor", exact=True).fill(processor)
    b.page.get_by_label("Processor options").fill(json.dumps(options))
    b.page.get_by_label("Server paths").fill("\n".join(paths))
    b.page.get_by_role("button", name="Create batch").click()
    expect(b.page).to_have_url(re.compile(rf"/batches/{batch_id}$"))


def test_server_path_batch_progress_reaches_100(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("docs", 12)
    browser.page.add_init_script(RECORD_PROGRESS)
    new_batch(
        browser,
        batch_id="paths-1",
        processor="sleep",
        options={"seconds": 0.25},
        paths=[str(folder)],
    )
    page = browser.page
    bar = page.locator("#progress")
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=30_000)
    expect(page.locator("#batch-state")).to_have_text("complete")
    expect(page.locator('[data-count="done"]')).to_have_text("12")
    expect(page.locator('[data-count="total"]')).to_have_text("12")
    seen = page.evaluate("window.__seen")
    # Live: the bar moved through values between empty and full without a reload.
    assert any(0 < v < 100 for v in seen), seen
    assert seen == sorted(seen), seen
    # The chart drew this minute's finished documents.
    expect(page.locator("#chart svg rect.bar-done").first).to_be_visible()
    expect(page.locator("#documents tbody tr[data-document]")).to_have_count(12)
    browser.shot("batch-complete")


def api_detail(served: Served, method: str, path: str, body: object = None) -> str:
    with served.client() as client:
        answer = client.request(method, path, json=body)
    assert answer.status_code >= 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    detail: str = answer.json()["detail"]
    return detail


def test_failures_grouped_with_reason_and_retry(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("flaky", 10)
    # Seeded: 7 of the first 10 draws fail, then 5 of the next 7 (the rng is per processor).
    new_batch(
        browser,
        batch_id="flaky-1",
        processor="sleep",
        options={"seconds": 0.02, "permanent_rate": 0.5, "seed": 7},
        paths=[str(folder)],
    )
    page = browser.page
    expect(page.locator("#batch-state")).to_have_text("complete", timeout=30_000)
    before = local_server.wait_complete("flaky-1")["batch"]["counts"]["failed"]
    assert before > 0
    group = page.locator('li.failure[data-code="sleep_permanent"]')
    expect(group.locator(".count")).to_have_text(f"{before} documents")
    expect(group.locator(".message")).to_contain_text("simulated permanent failure of")
    expect(page.locator('[data-count="failed"]')).to_have_text(str(before))
    browser.shot("batch-failures")

    group.get_by_role(
        "button", name=f"Retry the {before} documents that failed with sleep_permanent"
    ).click()
    expect(page.locator("#notice")).to_have_text(f"{before} documents put back to pending.")
    # The stream had ended; the page follows the reopened batch to its new end.
    expect(page.locator("#live-status")).to_have_text(
        "Finished: every document reached an end.", timeout=30_000
    )
    after = local_server.wait_complete("flaky-1")["batch"]["counts"]["failed"]
    assert 0 < after < before
    expect(page.locator('[data-count="failed"]')).to_have_text(str(after))
    expect(group.locator(".count")).to_have_text(f"{after} documents")

    # A document that failed twice shows both attempts, each with its reason.
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page.locator("#documents tbody tr[data-document]")).to_have_count(after)
    with local_server.client() as client:
        failed = client.get("/api/v1/batches/flaky-1/documents?status=failed").json()["items"]
        # Every document still failed was retried: two recorded attempts each.
        histories = {d["id"]: client.get(f"/api/v1/documents/{d['id']}").json() for d in failed}
    assert all(len(h["attempts"]) == 2 for h in histories.values()), histories
    twice = failed[0]["id"]
    row = page.locator(f'tr[data-document="{twice}"]')
    row.get_by_role("button", name=re.compile("Show attempts")).click()
    attempts = page.locator(f"#attempts-{twice} table.attempts tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("failed")
    expect(attempts.nth(1)).to_contain_text("sleep_permanent")
    browser.shot("batch-retried-attempts")


def test_pause_with_reason_and_resume(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("slow", 30)
    new_batch(
        browser,
        batch_id="slow-1",
        processor="sleep",
        options={"seconds": 0.3},
        paths=[str(folder)],
    )
    page = browser.page
    expect(page.locator("#batch-state")).to_have_text("active")
    page.get_by_label("Pause reason").fill("maintenance window")
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.locator("#batch-state")).to_have_text("paused")
    expect(page.locator("#pause-reason")).to_have_text("Paused: maintenance window")
    with local_server.client() as client:
        batch = client.get("/api/v1/batches/slow-1").json()["batch"]
    assert batch["state"] == "paused"
    assert batch["pause_reason"] == "maintenance window"
    assert not batch["complete"]

    # The list shows the pause and its reason, and resumes from there.
    browser.go("/")
    row = page.locator('tr[data-batch="slow-1"]')
    expect(row.locator(".state")).to_have_text("paused")
    expect(row).to_contain_text("Reason: maintenance window")
    expect(row.get_by_role("button", name="Pause")).to_be_hidden()
    browser.shot("batches-paused")
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".state")).to_have_text("active")
    expect(page.locator("#notice")).to_have_text("Batch slow-1: resumed.")
    expect(row.locator(".state")).to_have_text("complete", timeout=30_000)
    expect(row.locator('[role="progressbar"]')).to_have_attribute("aria-valuenow", "100")
    assert local_server.wait_complete("slow-1")["batch"]["counts"]["done"] == 30


def test_cancel_from_the_list_asks_first(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("doomed", 30)
    with local_server.client() as client:
        created = client.post(
            "/api/v1/batches",
            json={
                "id": "doomed-1",
                "processor": "sleep",
                "options": {"seconds": 0.5},
                "paths": [str(folder)],
            },
        )
        assert created.status_code == 201, created.text
    browser.go("/")
    page = browser.page
    row = page.locator('tr[data-batch="doomed-1"]')
    # Dismissing the confirmation changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".state")).to_have_text("active")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Cancel").click()
    expect(row.locator(".state")).to_have_text("cancelled")
    with local_server.client() as client:
        batch = client.get("/api/v1/batches/doomed-1").json()["batch"]
    assert batch["state"] == "cancelled"
    assert batch["counts"]["cancelled"] > 0


def test_path_outside_the_allowed_roots_shows_the_api_error(
    local_server: Served, browser: Browser
) -> None:
    browser.base = local_server.url
    browser.go("/new")
    page = browser.page
    page.get_by_label("Processor", exact=True).fill("noop")
    page.get_by_label("Server paths").fill("/etc")
    page.get_by_role("button", name="Create batch").click()
    expected = api_detail(
        local_server, "POST", "/api/v1/batches", {"processor": "noop", "paths": ["/etc"]}
    )
    expect(page.get_by_role("alert")).to_have_text(expected)
    assert "/new" in page.url
    # A bad options field is caught before anything is sent.
    page.get_by_label("Processor options").fill("[1, 2]")
    page.get_by_role("button", name="Create batch").click()
    expect(page.get_by_role("alert")).to_have_text(
        'Processor options must be a JSON object, like {"seconds": 0.1}.'
    )
    browser.shot("new-batch-error")


# Every row count the documents table showed, recorded in the page as it changes.
RECORD_DOCUMENT_ROWS = """
window.__rows = [];
new MutationObserver(() => {
  const body = document.querySelector("#documents tbody");
  if (body) window.__rows.push(body.querySelectorAll("tr[data-document]").length);
}).observe(document, {subtree: true, childList: true});
"""


def test_a_late_answer_for_page_one_does_not_replace_page_two(
    local_server: Served, browser: Browser
) -> None:
    """The filter changes and the page turns before the list redraws: the newer page wins."""
    browser.base = local_server.url
    local_server.done_batch("late-1", 60)
    page = browser.page
    page.add_init_script(RECORD_DOCUMENT_ROWS)
    held = HeldRequests(
        page,
        "**/api/v1/batches/late-1/documents?*",
        lambda url: "status=done" in url and "cursor=" not in url,
    )
    browser.go("/batches/late-1")
    rows = page.locator("#documents tbody tr[data-document]")
    expect(rows).to_have_count(50)
    page.get_by_label("Status", exact=True).select_option("done")
    held.wait()
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(10)
    held.release(settle=True)
    assert page.evaluate("window.__rows[window.__rows.length - 1]") == 10
    expect(rows).to_have_count(10)


def test_a_filter_chosen_while_the_list_loads_is_read_at_once(
    local_server: Served, browser: Browser
) -> None:
    """A second filter picked while the first one's read is in flight is not dropped."""
    browser.base = local_server.url
    with local_server.client() as client:
        for batch_id, processor in [("whole-1", "noop"), ("stopped-1", "sleep")]:
            client.post(
                "/api/v1/batches",
                json={
                    "id": batch_id,
                    "processor": processor,
                    "options": {"seconds": 30} if processor == "sleep" else {},
                    "paths": [str(local_server.files(batch_id, 2))],
                },
            ).raise_for_status()
        client.post("/api/v1/batches/stopped-1/cancel").raise_for_status()
    local_server.wait_complete("whole-1")
    page = browser.page
    page.clock.install()
    browser.go("/")
    expect(page.locator('tr[data-batch="stopped-1"]')).to_be_visible()
    expect(page.locator('tr[data-batch="whole-1"]')).to_be_visible()
    # No poll may come to the rescue: the page's timers stand still from here.
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    held = HeldRequests(page, "**/api/v1/batches?*", lambda url: "state=complete" in url)
    page.get_by_label("State").select_option("complete")
    held.wait()
    page.get_by_label("State").select_option("cancelled")
    held.release()
    expect(page.locator('tr[data-batch="whole-1"]')).to_have_count(0)
    expect(page.locator('tr[data-batch="stopped-1"]')).to_be_visible()


def test_a_late_chart_for_another_window_is_not_drawn(
    local_server: Served, browser: Browser
) -> None:
    browser.base = local_server.url
    local_server.done_batch("chart-1", 3)
    page = browser.page
    held = HeldRequests(
        page, "**/api/v1/batches/chart-1/throughput?*", lambda url: "minutes=60" in url
    )
    browser.go("/batches/chart-1")
    held.wait()
    page.get_by_label("Window").select_option("15")
    chart = page.locator("#chart svg")
    expect(chart).to_have_attribute("aria-label", re.compile("Throughput per minute"))

    def recognisable(answer: dict[str, Any]) -> dict[str, Any]:
        for minute in answer["minutes"]:
            minute["per_second"] = 4321
        return answer

    held.release(settle=True, edit=recognisable)
    expect(chart).to_have_count(1)
    assert "4321" not in (chart.get_attribute("aria-label") or "")


def test_documents_page_by_page_and_by_status(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("many", 60)
    with local_server.client() as client:
        client.post(
            "/api/v1/batches", json={"id": "many-1", "processor": "noop", "paths": [str(folder)]}
        ).raise_for_status()
    local_server.wait_complete("many-1")
    browser.go("/batches/many-1")
    page = browser.page
    rows = page.locator("#documents tbody tr[data-document]")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(10)
    ids = [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.document)")]
    with local_server.client() as client:
        everything = client.get("/api/v1/batches/many-1/documents?limit=100").json()["items"]
    assert ids == [d["id"] for d in everything[50:]]
    expect(page.get_by_role("button", name="Next page")).to_be_hidden()
    page.get_by_role("button", name="First page").click()
    expect(rows).to_have_count(50)
    page.get_by_label("Status", exact=True).select_option("failed")
    expect(page.locator("#documents-empty")).to_be_visible()
    expect(rows).to_have_count(0)
