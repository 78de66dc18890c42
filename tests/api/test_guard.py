"""Hostile web pages: DNS rebinding (Host names) and cross-site requests, on a keyless
loopback server (the mode a page in the operator's browser could otherwise drive).

Also the security headers every response carries, and the API docs page from vendored
assets only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from ledger.api.guard import HostAllowList, host_name
from tests.api.conftest import Server, start_server, stop_server

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture(scope="module")
def keyless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("guard"),
        {
            "LEDGER_AUTH": "auto",
            "LEDGER_RATE_LIMIT_PER_MINUTE": "0",
            "LEDGER_ALLOWED_HOSTS": "ledger.example.com, *.corp.example",
            "LEDGER_CORS_ORIGINS": "http://app.example",
        },
    )
    yield srv
    stop_server(srv)


def test_host_names() -> None:
    assert host_name("LocalHost:8000") == "localhost"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("::1") == "::1"
    allowed = HostAllowList(["127.0.0.1", "*.corp.example"])
    assert allowed.allows("a.corp.example") and allowed.allows("b.a.corp.example")
    assert not allowed.allows("corp.example") and not allowed.allows("evilcorp.example")
    assert not allowed.allows("")
    assert HostAllowList(["*"]).allows("anything")


async def test_only_this_servers_host_names_are_answered(keyless: Server) -> None:
    port = keyless.base_url.rsplit(":", 1)[1]
    async with keyless.client() as client:
        for host in ("evil.example", f"evil.example:{port}", "corp.example", "evilcorp.example"):
            for path in ("/api/v1/batches", "/", "/static/app.js", "/schema/swagger", "/nope"):
                answer = await client.get(path, headers={"Host": host})
                assert answer.status_code == 400, (host, path)
                assert answer.headers["x-content-type-options"] == "nosniff"
        for host in (
            f"127.0.0.1:{port}",
            "localhost",
            f"[::1]:{port}",
            "ledger.example.com",
            "api.corp.example:443",
        ):
            answer = await client.get("/api/v1/batches", headers={"Host": host})
            assert answer.status_code == 200, host


async def test_cross_site_requests_change_nothing(keyless: Server) -> None:
    own = keyless.base_url
    evil = {"Origin": "http://evil.example"}
    async with keyless.client() as client:

        async def batch_ids() -> set[str]:
            return {b["id"] for b in (await client.get("/api/v1/batches")).json()["items"]}

        refused = [
            await client.post("/api/v1/batches", data={"id": "form"}),
            await client.post(
                "/api/v1/batches",
                content=b'{"id": "plain"}',
                headers={"Content-Type": "text/plain"},
            ),
            await client.post("/api/v1/batches", content=b'{"id": "untyped"}'),
            await client.post("/api/v1/batches", json={"id": "evil-json"}, headers=evil),
            await client.post("/api/v1/batches", json={"id": "null"}, headers={"Origin": "null"}),
        ]
        for answer in refused:
            assert answer.status_code == 403, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
        assert await batch_ids() == set()

        made = await client.post("/api/v1/batches", json={"id": "mine"}, headers={"Origin": own})
        assert made.status_code == 201, made.text
        listed = await client.post(
            "/api/v1/batches", json={"id": "partner"}, headers={"Origin": "http://app.example"}
        )
        assert listed.status_code == 201, listed.text  # one of LEDGER_CORS_ORIGINS
        files = [("f", ("a.txt", b"a", "text/plain"))]
        bare = await client.post("/api/v1/batches/mine/files", files=files)
        assert bare.status_code == 403
        assert "X-Requested-With" in bare.json()["detail"]
        cross = await client.post("/api/v1/batches/mine/files", files=files, headers=evil)
        assert cross.status_code == 403
        marked = await client.post(
            "/api/v1/batches/mine/files", files=files, headers={"X-Requested-With": "x"}
        )
        assert marked.status_code == 201, marked.text
        same_site = await client.post(
            "/api/v1/batches/mine/files", files=files, headers={"Origin": own}
        )
        assert same_site.status_code == 201, same_site.text

        # Body-less actions: no content type needed, but never from another site's page.
        assert (await client.post("/api/v1/batches/mine/pause", headers=evil)).status_code == 403
        batch = (await client.get("/api/v1/batches/mine")).json()["batch"]
        assert batch["state"] != "paused"
        paused = await client.post("/api/v1/batches/mine/pause")
        assert paused.status_code < 300, paused.text

        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "1"}
        forged = await client.post("/api/v1/uploads", headers={**tus, **evil})
        assert forged.status_code == 403
        assert await batch_ids() == {"mine", "partner"}


async def test_every_response_has_the_security_headers(keyless: Server) -> None:
    async with keyless.client() as client:
        for path in (
            "/",
            "/static/app.js",
            "/static/vendor/swagger-ui.css",
            "/api/v1/batches",
            "/api/v1/batches/missing",
            "/health",
            "/schema/openapi.json",
            "/no-such-page",
        ):
            answer = await client.get(path)
            for name, value in SECURITY_HEADERS.items():
                assert answer.headers.get(name) == value, (path, name)
            csp = answer.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp


async def test_api_docs_load_only_local_assets(keyless: Server) -> None:
    async with keyless.client() as client:
        page = await client.get("/schema/swagger")
        assert page.status_code == 200
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        html = page.text
        assert "<script>" not in html and "<style" not in html  # nothing inline
        urls = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls)
        assert "/static/vendor/swagger-ui-bundle.js" in urls
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert "content-security-policy" in asset.headers
        spec_url = re.search(r'data-spec-url="([^"]+)"', html)
        assert spec_url is not None
        assert (await client.get(spec_url.group(1))).json()["info"]["title"] == "ledger"


def test_no_cdn_in_the_docs_page_or_its_start_script(keyless: Server) -> None:
    page = httpx.get(keyless.base_url + "/schema/swagger").text
    start = httpx.get(keyless.base_url + "/static/swagger-init.js").text
    for text in (page, start):
        assert "http://" not in text and "https://" not in text
