"""The tus 1.0.0 protocol's vocabulary: headers, their parsing, checksums and versioning.

No I/O here beyond the ASGI middleware that answers version mismatches (412) and puts
``Tus-Resumable`` on every response of the upload routes, errors included.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from ledger.errors import Conflict

TUS_VERSION = "1.0.0"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
)
_MAX_INT = 2**63 - 1
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEY = re.compile(r"^[!-~]+$")  # visible ASCII; no spaces, and commas are excluded below

# Per-chunk checksums the server verifies: sha1 is the one the protocol requires.
CHECKSUMS: dict[str, Callable[[], Any]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "md5": lambda: hashlib.md5(usedforsecurity=False),
}

# Headers a browser page must be allowed to send and to read for tus to work cross-origin.
REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Tus-Resumable",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Offset",
    "Upload-Checksum",
    "Upload-Concat",
    "X-HTTP-Method-Override",
    "X-Requested-With",
)
EXPOSED_HEADERS = (
    "Upload-Offset",
    "Location",
    "Upload-Length",
    "Upload-Defer-Length",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
    "Upload-Metadata",
    "Upload-Expires",
)


class ClientGone(Exception):
    """The client closed the connection, or its body stalled, before the body ended."""


class ChecksumMismatch(Exception):
    """The chunk's checksum does not match the one the client sent (status 460)."""


async def request_body(
    request: Request[Any, Any, Any], idle_seconds: float
) -> AsyncIterator[bytes]:
    """The request body as it arrives; :class:`ClientGone` if the client leaves (or stalls
    for ``idle_seconds``) before its end."""
    while True:
        try:
            message = await asyncio.wait_for(request.receive(), idle_seconds)
        except TimeoutError:
            raise ClientGone from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        if message["type"] == "http.request":
            if body := message.get("body", b""):
                yield body
            if not message.get("more_body", False):
                return


def too_large(limit: int, length: int | None) -> HTTPException:
    """413: the upload would grow beyond its length or the server's largest."""
    what = f"the Upload-Length ({length})" if length is not None else "Tus-Max-Size"
    return HTTPException(status_code=413, detail=f"the upload would grow beyond {what}: {limit}")


def check_append(
    request: Request[Any, Any, Any],
    *,
    durable: int,
    length: int | None,
    max_bytes: int,
    client_offset: int | None,
    read_body: bool,
) -> tuple[int, tuple[str, bytes] | None]:
    """Before a byte of an append is read: 409 when ``client_offset`` is not the upload's
    ``durable`` offset, 413 when the announced body would not fit. The size the upload may
    grow to and the request's checksum (algorithm, digest), if it sent one."""
    if client_offset is not None and client_offset != durable:
        raise Conflict(
            f"Upload-Offset is {client_offset} but the upload has {durable} bytes; "
            f"resume from {durable}"
        )
    limit = length if length is not None else max_bytes
    announced = request.content_length if read_body else 0
    if announced is not None and durable + announced > limit:
        raise too_large(limit, length)
    return limit, parse_checksum(request.headers.get("upload-checksum")) if read_body else None


def parse_size(name: str, value: str | None) -> int | None:
    """A non-negative integer header (Upload-Offset, Upload-Length); None when absent."""
    if value is None:
        return None
    value = value.strip()
    if not _DIGITS.match(value) or int(value) > _MAX_INT:
        raise ClientException(f"{name} must be a non-negative integer, not {value[:40]!r}")
    return int(value)


def parse_defer_length(value: str | None) -> bool:
    if value is None:
        return False
    if value.strip() != "1":
        raise ClientException("Upload-Defer-Length must be 1")
    return True


def parse_metadata(value: str | None) -> dict[str, bytes | None]:
    """Upload-Metadata: comma-separated ``key base64value`` pairs (the value may be absent)."""
    if value is None or not value.strip():
        return {}
    pairs: dict[str, bytes | None] = {}
    for item in value.split(","):
        parts = item.strip().split(" ")
        key = parts[0]
        if not key or not _KEY.match(key) or len(parts) > 2:
            raise ClientException(f"Upload-Metadata has a malformed pair: {item.strip()[:60]!r}")
        if key in pairs:
            raise ClientException(f"Upload-Metadata has the key {key!r} twice")
        if len(parts) == 1 or parts[1] == "":
            pairs[key] = None
            continue
        try:
            pairs[key] = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError):
            raise ClientException(f"Upload-Metadata value of {key!r} is not valid base64") from None
    return pairs


def metadata_text(pairs: dict[str, bytes | None], key: str) -> str | None:
    """One metadata value as text (UTF-8), None when absent or empty."""
    raw = pairs.get(key)
    if not raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientException(f"Upload-Metadata value of {key!r} is not UTF-8") from None


def parse_checksum(value: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: ``algorithm base64digest``; 400 for an algorithm not offered."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in CHECKSUMS:
        raise ClientException(
            f"checksum algorithm {algorithm[:20]!r} is not supported; "
            f"use one of {', '.join(CHECKSUMS)}"
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ClientException("Upload-Checksum digest is not valid base64") from None
    if len(digest) != CHECKSUMS[algorithm]().digest_size:
        raise ClientException(f"Upload-Checksum digest has the wrong length for {algorithm}")
    return algorithm, digest


def http_date(moment: datetime) -> str:
    """RFC 7231 date, as Upload-Expires wants it."""
    return format_datetime(moment, usegmt=True)


def is_offset_stream(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == OFFSET_OCTET_STREAM


def require_offset_stream(content_type: str | None) -> None:
    if not is_offset_stream(content_type):
        raise HTTPException(
            status_code=415, detail=f"send upload bytes as Content-Type: {OFFSET_OCTET_STREAM}"
        )


def tus_middleware(app: ASGIApp) -> ASGIApp:
    """Answer requests of another protocol version with 412 (OPTIONS needs no version) and
    put ``Tus-Resumable`` on every response, errors included."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        http_scope = scope

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                headers["Tus-Resumable"] = TUS_VERSION
            await send(message)

        if http_scope["method"] != "OPTIONS":
            version = None
            for name, value in http_scope["headers"]:
                if name.lower() == b"tus-resumable":
                    version = value.decode("latin-1").strip()
            if version != TUS_VERSION:
                await _precondition_failed(http_scope, send_with_version, version)
                return
        await app(scope, receive, send_with_version)

    return middleware


async def _precondition_failed(scope: HTTPScope, send: Send, version: str | None) -> None:
    detail = f"this server speaks tus {TUS_VERSION}; send Tus-Resumable: {TUS_VERSION}" + (
        f" (not {version[:20]!r})" if version else ""
    )
    body = msgspec.json.encode(
        {
            "title": "Precondition Failed",
            "status": 412,
            "detail": detail,
            "instance": scope.get("path"),
        }
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 412,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"tus-version", TUS_VERSION.encode()),
        ],
    }
    await send(start)
    end: HTTPResponseBodyEvent = {
        "type": "http.response.body",
        "body": body if scope["method"] != "HEAD" else b"",
        "more_body": False,
    }
    await send(end)
