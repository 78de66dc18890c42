"""Keys and tenants, keyboard use, labelled controls, phone width, security headers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, HeldRequests, Served, skip_loudly

PAGES = ["/", "/new", "/search", "/webhooks", "/workers"]
VENDOR = Path(__file__).resolve().parents[2] / "ledger" / "dashboard" / "static" / "vendor"

# Controls without an accessible name: no label, no aria-label, no text.
UNLABELLED = """
() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
  .filter(el => el.offsetParent !== null)
  .filter(el => {
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label')
      || el.getAttribute('aria-labelledby') || (el.textContent || '').trim();
    return !named;
  })
  .map(el => el.outerHTML)
"""


def test_key_form_and_tenant_scoping(keyed_server: Served, browser: Browser) -> None:
    browser.base = keyed_server.url
    folder = keyed_server.files("acme-docs", 3)
    with keyed_server.client("acme") as client:
        client.post(
            "/api/v1/batches", json={"id": "acme-1", "processor": "noop", "paths": [str(folder)]}
        ).raise_for_status()
    page = browser.page
    browser.go("/")
    expect(page.get_by_role("heading", name="API key")).to_be_visible()
    expect(page.locator("#content")).to_be_hidden()
    browser.shot("key-form")

    page.get_by_role("textbox", name="API key").fill("not-a-key")
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert")).to_have_text("the API key is unknown or revoked")

    # Another tenant sees none of acme's batches, not even by its address.
    page.get_by_role("textbox", name="API key").fill(keyed_server.keys["globex"])
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_text("No batches yet.")).to_be_visible()
    expect(page.locator('tr[data-batch="acme-1"]')).to_have_count(0)
    browser.go("/batches/acme-1")
    expect(page.get_by_role("alert")).to_have_text("no batch 'acme-1'")
    expect(page.locator("#documents tbody tr")).to_have_count(0)

    # The key lives in this tab only until forgotten.
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_role("heading", name="API key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0
    page.get_by_role("textbox", name="API key").fill(keyed_server.keys["acme"])
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#batch-state")).to_have_text("complete")
    expect(page.locator('[data-count="done"]')).to_have_text("3")
    browser.go("/")
    expect(page.locator('tr[data-batch="acme-1"]')).to_be_visible()


def test_local_mode_asks_for_no_key(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    browser.go("/")
    expect(browser.page.get_by_role("heading", name="Batches")).to_be_visible()
    expect(browser.page.locator("#key-panel")).to_be_hidden()
    expect(browser.page.locator("#key-status")).to_be_hidden()


def test_every_control_is_labelled(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("labels", 2)
    with local_server.client() as client:
        client.post(
            "/api/v1/batches", json={"id": "labels-1", "processor": "noop", "paths": [str(folder)]}
        ).raise_for_status()
    local_server.wait_complete("labels-1")
    for path in [*PAGES, "/batches/labels-1"]:
        browser.go(path)
        browser.page.wait_for_load_state("networkidle")
        if path == "/batches/labels-1":
            expect(browser.page.locator("#documents tbody tr[data-document]")).to_have_count(2)
        assert browser.page.evaluate(UNLABELLED) == [], path
        assert browser.page.locator("h1:visible").count() == 1, path


def test_keyboard_reaches_and_opens_a_batch(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    folder = local_server.files("keys", 3)
    with local_server.client() as client:
        client.post(
            "/api/v1/batches", json={"id": "kbd-1", "processor": "noop", "paths": [str(folder)]}
        ).raise_for_status()
    local_server.wait_complete("kbd-1")
    page = browser.page
    browser.go("/")
    expect(page.locator('tr[data-batch="kbd-1"] a')).to_be_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Batch kbd-1":
            break
    else:
        raise AssertionError("Tab never reached the batch link")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/batches/kbd-1$"))
    expect(page.locator("#documents tbody tr[data-document]")).to_have_count(3)
    # The attempts of a document open from the keyboard too.
    page.locator("#documents tbody tr[data-document] button").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("table.attempts tbody tr")).to_have_count(1)
    focused = page.evaluate("document.activeElement.getAttribute('aria-expanded')")
    assert focused == "true"


def test_phone_width_has_no_sideways_scroll(local_server: Served, phone: Browser) -> None:
    phone.base = local_server.url
    folder = local_server.files("phone", 4)
    with local_server.client() as client:
        client.post(
            "/api/v1/batches",
            json={"id": "phone-1", "processor": "noop", "paths": [str(folder)]},
        ).raise_for_status()
    local_server.wait_complete("phone-1")
    for name, path, ready in [
        ("phone-batches", "/", 'tr[data-batch="phone-1"]'),
        ("phone-batch", "/batches/phone-1", "#documents tbody tr[data-document]"),
        ("phone-new", "/new", "#paths"),
        ("phone-search", "/search", "#q"),
    ]:
        phone.go(path)
        expect(phone.page.locator(ready).first).to_be_visible()
        phone.page.wait_for_load_state("networkidle")
        overflow = phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (path, overflow)
        phone.shot(name)


def test_security_headers_and_local_assets(local_server: Served) -> None:
    for path in PAGES:
        answer = httpx.get(local_server.url + path)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "default-src 'none'" in csp
        assert "connect-src 'self'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        # Every script and stylesheet comes from this server.
        assets = re.findall(r'(?:src|href)="([^"]+)"', answer.text)
        assert all(a.startswith(("/", "#", "data:")) and not a.startswith("//") for a in assets)
        for asset in assets:
            if asset.startswith("/static/"):
                assert httpx.get(local_server.url + asset).status_code == 200, asset
    # The page shells hold no batch data: that comes from the API with the caller's key.
    assert "<script>" not in httpx.get(local_server.url + "/").text


def test_vendored_tus_client_is_the_published_file() -> None:
    readme = (VENDOR / "README.md").read_text()
    recorded = re.search(r"`tus\.min\.js`.*\| `([0-9a-f]{64})` \|", readme)
    assert recorded, readme
    actual = hashlib.sha256((VENDOR / "tus.min.js").read_bytes()).hexdigest()
    assert actual == recorded.group(1)
    assert "4.3.1" in readme
    assert (VENDOR / "tus-js-client.LICENSE").read_text().startswith("The MIT License")


def test_search_shows_the_api_answer(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    browser.go("/search")
    page = browser.page
    page.get_by_label("Query").fill("ledger")
    page.get_by_role("button", name="Search").click()
    answer = httpx.get(local_server.url + "/api/v1/search", params={"q": "ledger", "k": 10})
    if answer.status_code == 501:
        expect(page.get_by_role("alert")).to_have_text(answer.json()["detail"])
    else:
        assert answer.status_code == 200, answer.text
        expect(page.locator("#hits li")).to_have_count(len(answer.json()["hits"]))
    browser.shot("search")


def require_search(server: Served) -> None:
    """Skip loudly when this server's database cannot search."""
    probe = httpx.get(server.url + "/api/v1/search", params={"q": "probe"})
    if probe.status_code == 501:
        skip_loudly(f"search answers 501 on this server: {probe.json()['detail']}")


def test_search_finds_an_ingested_document(local_server: Served, browser: Browser) -> None:
    require_search(local_server)
    local_server.ingested(
        "search-1",
        {
            "fish.txt": "Notes on the zebrafish.\n\nThe zebrafish is a small freshwater fish.\n",
            "other.txt": "Nothing about fish at all, only birds.\n",
        },
    )
    browser.base = local_server.url
    browser.go("/search?q=zebrafish&k=5")
    page = browser.page
    hits = page.locator("#hits li")
    expect(hits).to_have_count(1)
    expect(hits.first.locator(".source")).to_contain_text("fish.txt")
    expect(hits.first.locator("mark").first).to_have_text(re.compile("zebrafish", re.I))
    expect(page.locator("#search-summary")).to_have_text("1 result for “zebrafish”.")
    browser.shot("search-hits")


def test_search_cites_an_upload_by_its_file_name(local_server: Served, browser: Browser) -> None:
    require_search(local_server)
    folder = local_server.root / "cited"
    folder.mkdir()
    (folder / "birds.txt").write_text("Only birds here.\n")
    with local_server.client() as client:
        client.post(
            "/api/v1/batches", json={"id": "cite-1", "processor": "ingest", "paths": [str(folder)]}
        ).raise_for_status()
        client.post(
            "/api/v1/batches/cite-1/files",
            headers={"X-Requested-With": "test"},  # as the dashboard's own uploads send
            files=[("f", ("Axolotl Notes.txt", b"The axolotl regrows its limbs.\n", "text/plain"))],
        ).raise_for_status()
    local_server.wait_complete("cite-1")
    browser.base = local_server.url
    browser.go("/search?q=axolotl&k=5")
    hits = browser.page.locator("#hits li")
    expect(hits).to_have_count(1)
    expect(hits.first.locator(".source")).to_have_text("Axolotl Notes.txt")
    expect(hits.first).to_contain_text("chars 0–")
    expect(hits.first.locator("a.document")).to_have_attribute(
        "href", re.compile(r"^/documents/\d+$")
    )
    expect(hits.first).not_to_contain_text("uploads")


def test_vendored_swagger_ui_is_the_published_files() -> None:
    readme = (VENDOR / "README.md").read_text()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        recorded = re.search(rf"`{re.escape(name)}`.*\| `([0-9a-f]{{64}})` \|", readme)
        assert recorded, name
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == recorded.group(1)
    assert "Apache License" in (VENDOR / "swagger-ui-dist.LICENSE").read_text()


def test_api_docs_render_from_this_server_only(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    elsewhere: list[str] = []
    browser.page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith(local_server.url) or request.url.startswith("data:")
            else elsewhere.append(request.url)
        ),
    )
    browser.go("/schema/swagger")
    page = browser.page
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("ledger")
    expect(page.locator(".opblock").first).to_be_visible()
    assert elsewhere == []
    # The browser fixture fails the test on any CSP violation or uncaught error.


def test_a_late_answer_to_an_older_search_is_not_shown(
    local_server: Served, browser: Browser
) -> None:
    require_search(local_server)
    local_server.ingested(
        "two-searches-1",
        {
            "fish.txt": "The zebrafish is a small freshwater fish.\n",
            "birds.txt": "The kestrel hovers over the field.\n",
        },
    )
    browser.base = local_server.url
    page = browser.page
    held = HeldRequests(page, "**/api/v1/search?*", lambda url: "q=zebrafish" in url)
    browser.go("/search?q=zebrafish&k=5")
    held.wait()
    page.get_by_label("Query").fill("kestrel")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#search-summary")).to_have_text("1 result for “kestrel”.")
    held.release(settle=True)
    expect(page.locator("#search-summary")).to_have_text("1 result for “kestrel”.")
    expect(page.locator("#hits li .source")).to_contain_text("birds.txt")
