"""The new-batch form shows the options the chosen processor declares
(LEDGER_PROCESSOR_OPTIONS), at 1400 and 390 px, and the server's refusal of options that
do not fit them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import Browser, Served, start, stop

HERE = "tests.dashboard.processors"
PAGE_FITS = "document.documentElement.scrollWidth <= window.innerWidth"
DECLARED = {
    "resize": {
        "width": {"type": "integer", "minimum": 16, "maximum": 4096, "required": True,
                  "description": "target width in pixels"},
        "format": {"type": "string", "enum": ["png", "webp"], "default": "png"},
    }
}  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start(
        tmp_path_factory.mktemp("dash-declared"),
        env={
            "LEDGER_AUTH": "off",
            "LEDGER_PROCESSORS": f"resize={HERE}:skips",
            "LEDGER_PROCESSOR_OPTIONS": json.dumps(DECLARED),
        },
    )
    yield server
    stop(server)


def test_form_shows_declared_options_and_the_refusal(
    served: Served, wide: Browser, phone: Browser
) -> None:
    folder = served.files("declared", 1)
    for n, b in enumerate((wide, phone)):
        b.base = served.url
        b.go("/new")
        page = b.page
        page.get_by_label("Processor", exact=True).fill("resize")
        listed = page.locator("#options-declared li")
        expect(listed).to_have_count(2)
        width = page.locator('#options-declared li[data-option="width"]')
        expect(width).to_contain_text("integer; required; 16 to 4096")
        expect(width).to_contain_text("target width in pixels")
        expect(page.locator('#options-declared li[data-option="format"]')).to_contain_text(
            "one of png, webp"
        )
        options = page.get_by_label("Processor options")
        expect(options).to_have_attribute("placeholder", '{"width":16,"format":"png"}')
        assert page.evaluate(PAGE_FITS), page.evaluate("document.documentElement.scrollWidth")
        b.shot(f"declared-options-{page.viewport_size['width']}")

        page.get_by_label("Batch id").fill(f"declared-{n}")
        page.get_by_label("Server paths").fill(str(folder))
        options.fill('{"width": 8}')
        page.get_by_role("button", name="Create batch").click()
        expect(page.get_by_role("alert")).to_contain_text("option width must be at least 16")
        options.fill('{"width": 640, "format": "webp"}')
        page.get_by_role("button", name="Create batch").click()
        expect(page).to_have_url(f"{served.url}/batches/declared-{n}")
        # Back to a processor that declares nothing: the list goes away.
        b.go("/new")
        page.get_by_label("Processor", exact=True).fill("ingest")
        expect(page.locator("#options-declared")).to_be_hidden()
