"""A real ``ledger serve`` (subprocess, loopback port, temporary home, in-process workers)
and a real headless Chromium driven by Playwright.

The browser is the system's Chromium (Debian's ``chromium`` package, or
``LEDGER_TEST_CHROMIUM``); Playwright's own browser download is never used. Without a
Chromium, or without the ``playwright`` package, every test here is skipped with the reason
in the summary, never passed.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.app import Ledger
from ledger.db import migrate
from ledger.settings import Settings
from tests.helpers.server import free_port, spawn
from tests.helpers.server import stop as stop_server

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_skip_reason: list[str] = []


def chromium_path() -> str | None:
    """The Chromium to drive: LEDGER_TEST_CHROMIUM, else the one on PATH."""
    configured = os.environ.get("LEDGER_TEST_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def skip_loudly(reason: str) -> None:
    """Skip, and repeat the reason in red at the end of the run."""
    if reason not in _skip_reason:
        _skip_reason.append(reason)
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for reason in _skip_reason:
        terminalreporter.write_sep("!", f"DASHBOARD BROWSER TESTS SKIPPED: {reason}", red=True)


@dataclass
class Served:
    """One running ``ledger serve``."""

    url: str
    home: Path
    root: Path  # the only allowed root for server paths
    proc: subprocess.Popen[bytes]
    log: Path
    keys: dict[str, str] = field(default_factory=dict)  # tenant -> API key

    def client(self, tenant: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def files(self, folder: str, count: int, *, text: str = "document") -> Path:
        """``count`` small text files in a new folder under the allowed root."""
        path = self.root / folder
        path.mkdir(parents=True)
        for i in range(count):
            (path / f"{folder}-{i:03d}.txt").write_text(f"{text} {i} of {folder}\n")
        return path

    def done_batch(self, batch_id: str, count: int) -> None:
        """A ``noop`` batch of ``count`` small files under the root, finished."""
        self._finished(batch_id, "noop", self.files(batch_id, count))

    def ingested(self, batch_id: str, texts: dict[str, str]) -> None:
        """An ``ingest`` batch of the files ``texts`` names (name -> text), finished."""
        folder = self.root / batch_id
        folder.mkdir(parents=True)
        for name, text in texts.items():
            (folder / name).write_text(text)
        self._finished(batch_id, "ingest", folder)

    def _finished(self, batch_id: str, processor: str, folder: Path) -> None:
        with self.client() as client:
            client.post(
                "/api/v1/batches",
                json={"id": batch_id, "processor": processor, "paths": [str(folder)]},
            ).raise_for_status()
        self.wait_complete(batch_id)

    def wait_complete(self, batch_id: str, tenant: str | None = None, timeout: float = 60) -> Any:
        """Poll the API until the batch has nothing left to do; returns its progress."""
        deadline = time.monotonic() + timeout
        with self.client(tenant) as client:
            while True:
                progress = client.get(f"/api/v1/batches/{batch_id}").json()
                if progress["batch"]["complete"] and progress["batch"]["total"]:
                    return progress
                if time.monotonic() > deadline:
                    raise AssertionError(f"batch {batch_id} did not complete: {progress}")
                time.sleep(0.1)


def start(tmp: Path, *, env: dict[str, str], tenants: tuple[str, ...] = ()) -> Served:
    home, root = tmp / "home", tmp / "root"
    home.mkdir()
    root.mkdir()
    settings = Settings(home=home)
    keys: dict[str, str] = {}

    async def prepare() -> None:
        await migrate.upgrade_async(settings.url)
        async with await Ledger.open(settings) as ledger:
            for tenant in tenants:
                keys[tenant] = (await ledger.keys.create(tenant))[1]

    # In a thread of its own: Playwright's sync API owns this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, prepare()).result()
    port = free_port()
    log = tmp / "server.log"
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LEDGER_HOME": str(home),
        "LEDGER_ALLOWED_ROOTS": str(root),
        # Every tenant may use the one root (isolation of roots has tests of its own).
        "LEDGER_TENANT_ROOTS": json.dumps({tenant: [str(root)] for tenant in tenants}),
        "LEDGER_SSE_POLL_SECONDS": "0.05",
        "LEDGER_POLL_SECONDS": "0.05",
        "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
        "LEDGER_SHUTDOWN_GRACE_SECONDS": "2",
        **env,
    }
    full_env.pop("LEDGER_DATABASE_URL", None)
    args = ["-m", "ledger", "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = spawn(args, env=full_env, log=log, cwd=tmp, port=port)
    url = f"http://127.0.0.1:{port}"
    return Served(url, home, root, proc, log, keys)


def stop(served: Served) -> None:
    stop_server(served.proc, served.log, timeout=15)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Local single-user mode (no keys), two workers so progress is visible."""
    served = start(
        tmp_path_factory.mktemp("dash-local"),
        env={"LEDGER_AUTH": "off", "LEDGER_CONCURRENCY": "2"},
    )
    yield served
    stop(served)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """API keys required; tenants 'acme' and 'globex'."""
    served = start(
        tmp_path_factory.mktemp("dash-keys"),
        env={"LEDGER_AUTH": "on", "LEDGER_CONCURRENCY": "4"},
        tenants=("acme", "globex"),
    )
    yield served
    stop(served)


@dataclass
class Browser:
    """One page in a fresh Chromium profile, with the problems the page ran into."""

    page: Any
    context: Any
    errors: list[str]  # uncaught exceptions and Content-Security-Policy violations
    base: str = ""

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


class HeldRequests:
    """Requests matching ``pattern`` whose URL ``wanted`` picks wait until the test lets them
    go: how a test makes an answer arrive late, in the order it chooses."""

    def __init__(self, page: Any, pattern: str, wanted: Callable[[str], bool]) -> None:
        self.page = page
        self.wanted = wanted
        self.routes: list[Any] = []
        page.route(pattern, self._route)

    def _route(self, route: Any) -> None:
        if self.wanted(route.request.url):
            self.routes.append(route)
        else:
            route.continue_()

    def wait(self, count: int = 1) -> None:
        """Until ``count`` requests are held (route handlers run while the page is waited on)."""
        for _ in range(400):
            if len(self.routes) >= count:
                return
            self.page.wait_for_timeout(25)
        raise AssertionError(f"only {len(self.routes)} of {count} requests were held")

    def release(self, *, settle: bool = False, edit: Callable[[Any], Any] | None = None) -> None:
        """Let every held request go; with ``edit``, its JSON answer is served as ``edit``
        returns it (to tell it apart on the page); with ``settle``, wait until each answer has
        arrived and give the page every chance to draw it."""
        for route in self.routes:
            with self.page.expect_event("requestfinished") if settle else nullcontext():
                if edit is None:
                    route.continue_()
                else:
                    response = route.fetch()
                    route.fulfill(response=response, json=edit(response.json()))
        self.routes.clear()
        if settle:
            self.page.evaluate("() => new Promise((done) => setTimeout(done, 500))")


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver, for one test module at a time.

    Its sync API runs an event loop in this thread for as long as it is open, which would
    break every later test that starts one of its own (asyncio.run, pytest-asyncio): so it
    is closed at the end of each module, never held for the session.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        skip_loudly(f"the playwright package is not installed ({exc}); pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        skip_loudly(
            "no Chromium found (install Debian's chromium package, or set "
            "LEDGER_TEST_CHROMIUM to a Chromium binary)"
        )
    with sync_playwright() as driver:
        yield driver, executable


def open_browser(
    driver_and_path: Any, tmp: Path, *, width: int = 1280, height: int = 900
) -> Browser:
    driver, executable = driver_and_path
    profile = tmp / f"profile-{time.monotonic_ns()}"
    context = driver.chromium.launch_persistent_context(
        str(profile),
        executable_path=executable,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": width, "height": height},
        accept_downloads=False,
    )
    context.set_default_timeout(20_000)
    page = context.pages[0] if context.pages else context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))

    def on_console(message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            errors.append(f"csp: {text}")

    page.on("console", on_console)
    return Browser(page=page, context=context, errors=errors)


def checked_page(driver: Any, tmp: Path, **size: int) -> Iterator[Browser]:
    """A page that fails its test if it threw or broke its own CSP, closed at the end."""
    opened = open_browser(driver, tmp, **size)
    try:
        yield opened
    finally:
        opened.context.close()
    assert not opened.errors, opened.errors


@pytest.fixture
def browser(playwright_driver: Any, tmp_path: Path) -> Iterator[Browser]:
    """A laptop-sized page; the test fails if the page threw or broke its own CSP."""
    yield from checked_page(playwright_driver, tmp_path)


@pytest.fixture
def phone(playwright_driver: Any, tmp_path: Path) -> Iterator[Browser]:
    """A phone-sized page (390 x 844 CSS pixels)."""
    yield from checked_page(playwright_driver, tmp_path, width=390, height=844)


@pytest.fixture
def wide(playwright_driver: Any, tmp_path: Path) -> Iterator[Browser]:
    """A 1400 px wide desktop page."""
    yield from checked_page(playwright_driver, tmp_path, width=1400, height=900)
