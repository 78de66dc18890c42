"""The document page shows the document's chunks in order with their pages and offsets, a
page of them at a time, readable at 1400 and 390 px."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served
from tests.ingest import fixtures as fx

PAGE_FITS = "document.documentElement.scrollWidth <= window.innerWidth"


def documents(served: Served, folder: Path) -> dict[str, int]:
    """Ingest ``folder`` in small chunks; the document id of each file by name."""
    batch_id = folder.name
    with served.client() as client:
        answer = client.post(
            "/api/v1/batches",
            json={
                "id": batch_id,
                "paths": [str(folder)],
                "options": {"chunk_size": 64, "chunk_overlap": 0},
            },
        )
        assert answer.status_code == 201, answer.text
    served.wait_complete(batch_id)
    with served.client() as client:
        items = client.get(f"/api/v1/batches/{batch_id}/documents").json()["items"]
    assert {d["status"] for d in items} == {"done"}, items
    return {Path(d["source"]).name: d["id"] for d in items}


def test_document_page_lists_chunks_with_pages(
    local_server: Served, wide: Browser, phone: Browser
) -> None:
    served = local_server
    folder = served.root / "chunked"
    folder.mkdir()
    pages = ["First page about the lighthouse. " * 4, "Second page on the tides. " * 4]
    fx.make_pdf(folder / "two.pdf", pages)
    long_text = " ".join(f"Sentence {i} about the harbour and its keeper." for i in range(120))
    (folder / "long.txt").write_text(long_text, encoding="utf-8")
    ids = documents(served, folder)

    for b in (wide, phone):
        b.base = served.url
        b.go(f"/documents/{ids['two.pdf']}")
        items = b.page.locator("#document-chunks li")
        expect(items.first).to_be_visible()
        expect(items.first.locator(".chunk-where")).to_contain_text("#0 · page 1")
        expect(items.last.locator(".chunk-where")).to_contain_text("page 2")
        expect(items.last.locator(".chunk-text")).to_contain_text("tides")
        expect(b.page.locator("#document-chunks-more")).to_be_hidden()
        assert b.page.evaluate(PAGE_FITS), b.page.evaluate("document.documentElement.scrollWidth")

    # A long document: 50 at a time, in order, then the rest on demand.
    with served.client() as client:
        first = client.get(
            f"/api/v1/batches/chunked/documents/{ids['long.txt']}/chunks", params={"limit": 1000}
        ).json()
    total = len(first["items"])
    assert total > 50
    for b in (wide, phone):
        b.go(f"/documents/{ids['long.txt']}")
        items = b.page.locator("#document-chunks li")
        expect(items).to_have_count(50)
        more = b.page.locator("#document-chunks-more")
        expect(more).to_be_visible()
        more.click()
        expect(items).to_have_count(min(total, 100))
        ordinals = [int(x) for x in items.evaluate_all("els => els.map(e => e.dataset.ordinal)")]
        assert ordinals == list(range(len(ordinals)))
        assert b.page.evaluate(PAGE_FITS), b.page.evaluate("document.documentElement.scrollWidth")
        b.shot(f"document-chunks-{b.page.viewport_size['width']}")
