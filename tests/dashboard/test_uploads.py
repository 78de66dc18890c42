"""The New batch page's uploads: choosing and dropping files, then resumable tus uploads.

Choosing and dropping need only the page. The upload itself needs the server's tus endpoint
(``/api/v1/uploads``): where the server has none, that test is skipped with the reason.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, skip_loudly

# Drop two files and a folder-like set of names on the drop zone, as a browser drag would.
DROP = """
([names]) => {
  const dt = new DataTransfer();
  for (const name of names) {
    dt.items.add(new File(["content of " + name], name, {type: "text/plain"}));
  }
  const zone = document.getElementById("drop");
  const init = {dataTransfer: dt, bubbles: true, cancelable: true};
  zone.dispatchEvent(new DragEvent("dragover", init));
  zone.dispatchEvent(new DragEvent("drop", init));
}
"""


def test_choosing_and_dropping_files_lists_them(local_server: Served, browser: Browser) -> None:
    browser.base = local_server.url
    browser.go("/new")
    page = browser.page
    expect(page.get_by_role("button", name="Upload and process")).to_be_disabled()
    page.locator("#file-input").set_input_files(
        [
            {"name": "a.txt", "mimeType": "text/plain", "buffer": b"alpha"},
            {"name": "b.txt", "mimeType": "text/plain", "buffer": b"bravo!"},
        ]
    )
    page.evaluate(DROP, [["c.txt", "d.txt", "a.txt"]])
    items = page.locator("#uploads li")
    # a.txt dropped again with another size is another file; the same name and size is not.
    expect(items).to_have_count(5)
    page.evaluate(DROP, [["c.txt"]])
    expect(items).to_have_count(5)
    expect(page.locator("#selection")).to_have_text(re.compile(r"^5 files chosen"))
    expect(page.get_by_role("button", name="Upload and process")).to_be_enabled()
    browser.shot("new-batch-files")
    page.get_by_role("button", name="Clear the list").click()
    expect(items).to_have_count(0)
    expect(page.locator("#selection")).to_have_text("No files chosen.")


def _tus_available(served: Served) -> bool:
    answer = httpx.options(served.url + "/api/v1/uploads")
    return "tus-version" in answer.headers


def test_uploaded_files_are_processed_despite_a_dropped_connection(
    local_server: Served, browser: Browser, tmp_path: Path
) -> None:
    if not _tus_available(local_server):
        skip_loudly("the server has no tus endpoint at /api/v1/uploads: upload test not run")
    browser.base = local_server.url
    page = browser.page
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (12 * 4096))  # 12 MiB: two chunks
    small = [tmp_path / f"note-{i}.txt" for i in range(3)]
    for i, path in enumerate(small):
        path.write_text(f"note {i}\n")

    # Break the first chunk's connection once: the client must retry by itself.
    broken = threading.Event()

    def drop_first_patch(route: object) -> None:
        request = route.request  # type: ignore[attr-defined]
        if request.method == "PATCH" and not broken.is_set():
            broken.set()
            route.abort("connectionreset")  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    page.route("**/api/v1/uploads/**", drop_first_patch)
    browser.go("/new")
    page.get_by_label("Batch id").fill("upload-1")
    page.get_by_label("Processor", exact=True).fill("noop")
    page.locator("#file-input").set_input_files([str(big), *map(str, small)])
    page.get_by_role("button", name="Upload and process").click()
    expect(page.locator("#upload-done")).to_contain_text(
        "All 4 files are uploaded into batch", timeout=60_000
    )
    assert broken.is_set()
    browser.shot("new-batch-uploaded")
    page.get_by_role("link", name="Watch it being processed").click()
    expect(page.locator("#batch-state")).to_have_text("complete", timeout=30_000)
    expect(page.locator('[data-count="done"]')).to_have_text("4")
    with local_server.client() as client:
        docs = client.get("/api/v1/batches/upload-1/documents").json()["items"]
    assert sorted(d["meta"]["filename"] for d in docs) == sorted(p.name for p in [big, *small])
    by_name = {d["meta"]["filename"]: d for d in docs}
    assert by_name["big.bin"]["size"] == big.stat().st_size
    # Nothing is left for a later visit to resume.
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tus::'))") == []
