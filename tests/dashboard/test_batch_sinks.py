"""The batch page shows each sink's progress beside the documents' (a real ``ledger serve``
with an embedding server and a LanceDB sink, and a real Chromium)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, checked_page, start, stop
from tests.embed.server import EmbeddingServer
from tests.embed.support import PROFILE, embedder_profiles, make_corpus
from tests.sinks.support import sink_profiles


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    embedding = EmbeddingServer(max_tokens=64).start()
    (tmp_path / "serve").mkdir()
    server = start(
        tmp_path / "serve",
        env={
            "LEDGER_AUTH": "off",
            "LEDGER_EMBEDDERS": embedder_profiles(embedding.base_url),
            "LEDGER_SINKS": sink_profiles(tmp_path / "stores"),
            "LEDGER_SINK_SCAN_SECONDS": "0.2",
        },
    )
    try:
        yield server
    finally:
        stop(server)
        embedding.down()


@pytest.fixture
def page(playwright_driver: Any, tmp_path: Path) -> Iterator[Browser]:
    yield from checked_page(playwright_driver, tmp_path)


def test_the_batch_page_shows_sink_progress(served: Served, page: Browser) -> None:
    make_corpus(served.root / "docs", per_topic=1)
    with served.client() as client:
        body = {
            "id": "mirrored",
            "options": {"embedder": PROFILE, "sinks": ["lance"]},
            "paths": [str(served.root / "docs")],
        }
        made = client.post("/api/v1/batches", json=body)
        assert made.status_code == 201, made.text
    page.base = served.url
    page.go("/batches/mirrored")
    row = page.page.locator("#sink-rows tr")
    expect(page.page.locator("#sinks")).to_be_visible()
    expect(row).to_have_count(1)
    expect(row.locator("th")).to_have_text("lance")
    expect(row.locator("td[data-label=done]")).to_have_text("6", timeout=60_000)
    expect(row.locator("td[data-label=pending]")).to_have_text("0")
    expect(row.locator("td[data-label=failed]")).to_have_text("0")
