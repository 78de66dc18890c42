"""The dashboard names a member of an archive by its parent and member path, and its
document page links to the archive it came from."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served
from tests.dashboard.test_readable import create
from tests.ingest import container_fixtures as cf


def test_a_child_document_links_to_its_parent(local_server: Served, browser: Browser) -> None:
    served = local_server
    folder = served.root / "archives"
    folder.mkdir()
    box = cf.make_zip(folder / "box.zip", {"notes/heron.txt": b"The heron waits.\n"})
    create(served, {"id": "children-1", "paths": [str(folder)]})
    served.wait_complete("children-1")
    with served.client() as client:
        items = client.get("/api/v1/batches/children-1/documents").json()["items"]
    (parent,) = [d for d in items if d["parent_id"] is None]
    (child,) = [d for d in items if d["parent_id"] is not None]
    browser.base = served.url
    browser.go("/batches/children-1")
    row = browser.page.locator(f"#documents tbody tr[data-document='{child['id']}']")
    expect(row.locator("td.source")).to_have_text(f"{box}!/notes/heron.txt")
    browser.go(f"/documents/{child['id']}")
    page = browser.page
    expect(page.locator("#document-name")).to_have_text("notes/heron.txt")
    expect(page.locator("#document-facts")).to_contain_text("Member path" + "notes/heron.txt")
    page.locator("#document-parent").click()
    expect(page).to_have_url(re.compile(rf"/documents/{parent['id']}$"))
    expect(page.locator("#document-name")).to_have_text("box.zip")
