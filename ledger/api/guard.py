"""Defences against hostile web pages in the operator's browser: DNS rebinding and CSRF.

A page on another site can make the browser send requests to this server. Two checks,
before any route runs, keep such requests from reading or changing anything:

* **Allowed hosts.** The ``Host`` header must name this server: the bind host, localhost,
  127.0.0.1, ::1 (any port), or a name in ``LEDGER_ALLOWED_HOSTS`` (``*.example.com``
  matches its subdomains; ``*`` turns the check off). A rebound DNS name pointing at
  127.0.0.1 carries its own name, so it is refused (400).
* **State-changing requests** (POST, PUT, PATCH, DELETE) must be ones a cross-site page
  cannot send without a CORS preflight: a JSON body, a tus request (``Tus-Resumable``
  header or a tus chunk body), no body at all, or a multipart body with an ``Origin``, an
  ``X-Requested-With`` header or a Bearer key. Form-urlencoded and ``text/plain`` bodies,
  which any page can post, are 403.
  An ``Origin``, when sent, must be this server's own origin (as the request addressed it)
  or one of ``LEDGER_CORS_ORIGINS``; otherwise 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from ledger.settings import Settings

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
TUS_CHUNK = "application/offset+octet-stream"


def host_name(host_header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class HostAllowList:
    """Exact names and ``*.suffix`` wildcards; ``*`` alone allows every host."""

    def __init__(self, names: Iterable[str]) -> None:
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        self.any = False
        for raw in names:
            name = host_name(raw) if not raw.startswith("*") else raw.strip().lower()
            if name == "*":
                self.any = True
            elif name.startswith("*."):
                self.suffixes.append(name[1:])  # ".example.com"
            elif name:
                self.exact.add(name)

    def allows(self, name: str) -> bool:
        if self.any or name in self.exact:
            return True
        return bool(name) and any(name.endswith(suffix) for suffix in self.suffixes)


def allowed_hosts(settings: Settings) -> HostAllowList:
    return HostAllowList([settings.host, *LOCAL_HOSTS, *settings.allowed_hosts])


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def csrf_refusal(
    method: str, headers: dict[str, str], own_origin: str, trusted: frozenset[str]
) -> str | None:
    """Why a request could have been forged by another site's page; None when it could not."""
    if method not in STATE_CHANGING:
        return None  # reads: the browser keeps another site's page from seeing the answer
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() not in trusted | {own_origin}:
        return "the request's Origin is not this server's"
    if "tus-resumable" in headers:
        return None
    content_type = headers.get("content-type")
    if content_type is None:
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        return "a request body needs a JSON content type" if has_body else None
    media_type = _media_type(content_type)
    # tus chunks: not a type a page may send cross-site without a preflight either.
    if _is_json(media_type) or media_type == TUS_CHUNK:
        return None
    if media_type == "multipart/form-data":
        bearer = headers.get("authorization", "").lower().startswith("bearer ")
        if origin is not None or "x-requested-with" in headers or bearer:
            return None
        return "a multipart upload needs an Origin or X-Requested-With header, or an API key"
    return f"{media_type or 'this content type'} is not accepted here; send JSON"


def _problem(status: int, title: str, detail: str) -> tuple[dict[str, object], bytes]:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, body.encode()


class Guard:
    """The ASGI middleware: refuses what the checks above refuse, before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)
        self.trusted = frozenset(o.lower() for o in settings.cors_origins)

    def refusal(self, scope: HTTPScope) -> tuple[int, str, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.hosts.allows(host_name(host)):
            return 400, "Bad Request", "this server does not answer to that Host name"
        own_origin = f"{scope.get('scheme', 'http')}://{host.strip().lower()}"
        reason = csrf_refusal(scope["method"].upper(), headers, own_origin, self.trusted)
        if reason is None:
            return None
        return 403, "Forbidden", f"refused as a possible cross-site request: {reason}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope) if scope["type"] == ScopeType.HTTP else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        start, body = _problem(*refusal)
        await send(start)  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": body, "more_body": False})
