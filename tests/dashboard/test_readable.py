"""Readable on every screen: tracebacks folded and wrapped at 1400 and 390 px, dark and
light themes, skip reasons, empty batches, the new-batch form's extra fields, the batch
list's state filter and a throughput chart that follows the event stream."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, start
from tests.dashboard.processors import LONG_WORD, RELEASE

HERE = "tests.dashboard.processors"
PROCESSORS = f"crash={HERE}:crashes,skip={HERE}:skips,gated={HERE}:gated"
CRASH_LOGGED = "raised ValueError: the document could not be parsed"
PAGE_FITS = "document.documentElement.scrollWidth <= window.innerWidth"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start(
        tmp_path_factory.mktemp("dash-readable"),
        env={"LEDGER_AUTH": "off", "LEDGER_CONCURRENCY": "4", "LEDGER_PROCESSORS": PROCESSORS},
    )
    yield server
    # The crashing processor's tracebacks are logged on purpose: the log must hold those
    # and nothing else that crashed.
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()
    text = server.log.read_text(errors="replace")
    assert "unhandled error" not in text, text[-5000:]
    assert text.count("Traceback") == text.count(CRASH_LOGGED), text[-5000:]


def create(served: Served, body: dict[str, Any]) -> dict[str, Any]:
    with served.client() as client:
        answer = client.post("/api/v1/batches", json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def crashed_batch(served: Served, batch_id: str) -> None:
    folder = served.files(batch_id, 1)
    create(
        served,
        {"id": batch_id, "processor": "crash", "max_attempts": 1, "paths": [str(folder)]},
    )
    served.wait_complete(batch_id)


def luminance(css_color: str) -> float:
    red, green, blue = (int(x) for x in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def check_traceback_fits(b: Browser, served: Served, batch_id: str) -> None:
    crashed_batch(served, batch_id)
    b.base = served.url
    b.go(f"/batches/{batch_id}")
    page = b.page
    row = page.locator("#documents tbody tr[data-document]")
    expect(row).to_have_count(1)
    # One failed document: the count agrees with its noun, as "up to 1 attempt" does.
    expect(page.locator("li.failure[data-code] .count")).to_have_text("1 document")
    expect(page.locator("#batch-meta")).to_contain_text("up to 1 attempt ·")
    folded = row.locator("details.trace")
    expect(folded.locator("summary")).to_contain_text("exception")
    expect(folded.locator("pre")).to_be_hidden()
    folded.locator("summary").click()
    expect(folded.locator("pre")).to_be_visible()
    expect(folded.locator("pre")).to_contain_text("Traceback")
    expect(folded.locator("pre")).to_contain_text(LONG_WORD)
    assert (
        page.locator("details.trace pre").first.evaluate("e => getComputedStyle(e).whiteSpace")
        == "pre-wrap"
    )
    assert page.evaluate(PAGE_FITS), page.evaluate("document.documentElement.scrollWidth")
    # An opened traceback stays open when the list is drawn again.
    row.evaluate("r => { r.dataset.old = 'yes'; }")
    page.get_by_label("Status", exact=True).select_option("failed")
    redrawn = page.locator("#documents tbody tr[data-document]:not([data-old])")
    expect(redrawn).to_have_count(1)
    expect(redrawn.locator("details.trace pre")).to_be_visible()

    # The same traceback in the attempts view: folded, then open, still within the page.
    row.get_by_role("button", name=re.compile("Show attempts")).click()
    attempt = page.locator("table.attempts tbody tr")
    expect(attempt).to_have_count(1)
    trace = attempt.locator("details.trace")
    expect(trace.locator("pre")).to_be_hidden()
    trace.locator("summary").click()
    expect(trace.locator("pre")).to_contain_text(LONG_WORD)
    assert page.evaluate(PAGE_FITS), page.evaluate("document.documentElement.scrollWidth")

    # The document's own page: its attempt with the folded traceback, and no result.
    document_id = row.get_attribute("data-document")
    row.get_by_role("link", name=f"Document {document_id}").click()
    expect(page).to_have_url(re.compile(rf"/documents/{document_id}$"))
    own = page.locator("#document-attempts tbody tr")
    expect(own).to_have_count(1)
    expect(own.locator("td").first).to_have_text("1")
    own.locator("details.trace summary").click()
    expect(own.locator("details.trace pre")).to_contain_text(LONG_WORD)
    expect(page.locator("#document-status")).to_have_text("failed")
    expect(page.locator("#document-result")).to_have_text("No result yet.")
    assert page.evaluate(PAGE_FITS), page.evaluate("document.documentElement.scrollWidth")
    b.shot(f"traceback-{page.viewport_size['width'] if page.viewport_size else 0}")


def test_traceback_folds_and_wraps_on_a_desktop(served: Served, wide: Browser) -> None:
    check_traceback_fits(wide, served, "crash-wide")


def test_traceback_folds_and_wraps_on_a_phone(served: Served, phone: Browser) -> None:
    check_traceback_fits(phone, served, "crash-phone")


@pytest.mark.parametrize(
    ("scheme", "dark"), [("dark", True), ("light", False)], ids=["dark", "light"]
)
def test_theme_follows_the_system(
    served: Served, browser: Browser, scheme: str, dark: bool
) -> None:
    folder = served.files(f"theme-{scheme}", 1)
    create(served, {"id": f"theme-{scheme}", "processor": "noop", "paths": [str(folder)]})
    browser.base = served.url
    browser.page.emulate_media(color_scheme=scheme)
    for path in ("/", "/new", f"/batches/theme-{scheme}"):
        browser.go(path)
        expect(browser.page.locator("main")).to_be_visible()
        body = browser.page.evaluate("getComputedStyle(document.body).backgroundColor")
        text = browser.page.evaluate("getComputedStyle(document.body).color")
        assert (luminance(body) < 0.2) is dark, (path, body)
        # Text keeps its contrast against the background in both themes.
        assert abs(luminance(text) - luminance(body)) > 0.6, (path, text, body)
    card = browser.page.locator(".card").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert (luminance(card) < 0.2) is dark, card
    expect(browser.page.locator("#batch-state")).to_have_text("complete")
    badge = browser.page.locator("#batch-state").evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert (luminance(badge) < 0.3) is dark, badge
    browser.shot(f"batch-{scheme}")


def test_new_batch_form_options_priority_and_attempts(served: Served, browser: Browser) -> None:
    browser.base = served.url
    folder = served.files("form", 2)
    browser.go("/new")
    page = browser.page
    processor = page.get_by_label("Processor", exact=True)
    options = page.get_by_label("Processor options")
    expect(processor).to_have_value("ingest")
    expect(options).to_have_attribute("placeholder", '{"chunk_size": 1000}')
    processor.fill("sleep")
    expect(options).to_have_attribute("placeholder", '{"seconds": 0.1}')
    processor.fill("noop")
    expect(options).to_have_attribute("placeholder", "{}")
    page.get_by_label("Batch id").fill("form-1")
    page.get_by_label("Priority").fill("7")
    page.get_by_label("Max attempts").fill("2")
    page.get_by_label("Server paths").fill(str(folder))
    page.get_by_role("button", name="Create batch").click()
    expect(page).to_have_url(re.compile(r"/batches/form-1$"))
    expect(page.locator("#batch-meta")).to_contain_text("up to 2 attempts")
    with served.client() as client:
        batch = client.get("/api/v1/batches/form-1").json()["batch"]
    assert (batch["priority"], batch["max_attempts"]) == (7, 2)


def test_batch_list_filters_finished_batches(served: Served, browser: Browser) -> None:
    finished_folder = served.files("finished", 2)
    waiting_folder = served.files("waiting", 2)
    create(served, {"id": "finished-1", "processor": "noop", "paths": [str(finished_folder)]})
    served.wait_complete("finished-1")
    create(served, {"id": "waiting-1", "processor": "gated", "paths": [str(waiting_folder)]})
    browser.base = served.url
    browser.go("/")
    page = browser.page
    finished = page.locator('tr[data-batch="finished-1"]')
    waiting = page.locator('tr[data-batch="waiting-1"]')
    expect(finished).to_be_visible()
    expect(waiting).to_be_visible()
    # The API filters: the page asks for the state and shows what it was sent.
    with page.expect_request(lambda r: "state=complete" in r.url):
        page.get_by_label("State").select_option("complete")
    expect(waiting).to_have_count(0)
    expect(finished.locator(".state")).to_have_text("complete")
    states = page.locator("#batches tbody .state").all_text_contents()
    assert states and set(states) == {"complete"}, states
    # Active is work left: the waiting batch, never the finished one.
    with page.expect_request(lambda r: "state=active" in r.url):
        page.get_by_label("State").select_option("active")
    expect(finished).to_have_count(0)
    expect(waiting).to_be_visible()
    page.get_by_label("State").select_option("cancelled")
    expect(finished).to_have_count(0)
    expect(page.locator("#empty-filtered")).to_be_visible()
    page.get_by_label("State").select_option("")
    expect(waiting).to_be_visible()
    for path in waiting_folder.iterdir():
        Path(str(path) + RELEASE).touch()


def test_empty_batch_is_complete_with_no_eta(served: Served, browser: Browser) -> None:
    created = create(served, {"id": "empty-1", "processor": "noop"})
    with served.client() as client:
        batch = client.get("/api/v1/batches/empty-1").json()["batch"]
    # The dashboard says what the API says.
    assert (batch["total"], batch["complete"], batch["status"]) == (0, True, "complete"), created
    browser.base = served.url
    browser.go("/batches/empty-1")
    page = browser.page
    expect(page.locator("#batch-state")).to_have_text("complete")
    expect(page.locator("#figure-finished")).to_have_text("no documents")
    expect(page.locator("#figure-eta")).to_have_text("ETA –")
    browser.go("/")
    row = page.locator('tr[data-batch="empty-1"]')
    expect(row.locator(".state")).to_have_text("complete")
    expect(row).to_contain_text("no documents")
    expect(row.locator('td[data-label="ETA"]')).to_have_text("–")


def test_skipped_documents_show_their_reason(served: Served, browser: Browser) -> None:
    folder = served.files("skipped", 2)
    create(served, {"id": "skipped-1", "processor": "skip", "paths": [str(folder)]})
    served.wait_complete("skipped-1")
    browser.base = served.url
    browser.go("/batches/skipped-1")
    rows = browser.page.locator("#documents tbody tr[data-document]")
    expect(rows).to_have_count(2)
    expect(rows.first.locator(".skip-reason")).to_have_text(
        "Skipped: nothing to do for skipped-000.txt"
    )
    expect(rows.nth(1).locator(".skip-reason")).to_have_text(
        "Skipped: nothing to do for skipped-001.txt"
    )
    rows.first.get_by_role("link").click()
    page = browser.page
    expect(page.locator("#document-facts")).to_contain_text(
        "Skipped because" + "nothing to do for skipped-000.txt"
    )
    expect(page.locator("#document-result")).to_contain_text('"reason": "nothing to do for')
    expect(page.locator("#document-batch")).to_have_attribute("href", "/batches/skipped-1")


def test_chart_follows_the_event_stream(served: Served, browser: Browser) -> None:
    folder = served.files("live", 4)
    create(served, {"id": "live-1", "processor": "gated", "paths": [str(folder)]})
    fetched: list[str] = []
    browser.page.on("request", lambda r: fetched.append(r.url) if "/throughput" in r.url else None)
    browser.base = served.url
    browser.go("/batches/live-1")
    page = browser.page
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#chart svg rect.bar-done")).to_have_count(0)
    assert len(fetched) == 1, fetched
    sources = sorted(folder.iterdir())
    try:
        # Two of four finish: the batch stays unfinished, so only its events can redraw.
        for path in sources[:2]:
            Path(str(path) + RELEASE).touch()
        expect(page.locator('[data-count="done"]')).to_have_text("2")
        expect(page.locator("#chart svg rect.bar-done").first).to_be_visible()
        assert len(fetched) >= 2, fetched
        expect(page.locator("#batch-state")).to_have_text("active")
    finally:
        for path in sources:
            Path(str(path) + RELEASE).touch()
    served.wait_complete("live-1")
