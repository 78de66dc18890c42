"""Resumable uploads: the tus 1.0.0 protocol at ``/api/v1/uploads``.

Core protocol plus creation, creation-with-upload, creation-defer-length, expiration,
checksum (sha1, sha256, md5) and termination. The upload's state is a ledger row (see
:mod:`ledger.uploads.state`). Its bytes go, as they arrive, into a local file under
``storage/uploads/<id>`` (:mod:`ledger.api.tus_local`), or, with ``LEDGER_STORAGE_URL``,
straight into the object store's multipart upload (:mod:`ledger.api.tus_store`), so any
API server can take any request of an upload. Each request that writes holds the upload's
lease in the database (several server processes may share uploads) and this process's own
set of uploads in progress; a local file is also locked. A second writer is answered 423
and the bytes stay right.

The routes are left out of the OpenAPI schema: they speak the tus protocol (headers, empty
bodies), documented in docs/api.md, not JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import ClientException, HTTPException, MethodNotAllowedException

from ledger.api import policy, tus_local, tus_store
from ledger.api.errors import problem
from ledger.api.multipart import clean_filename
from ledger.api.schemas import Problem
from ledger.api.tus_files import (
    FILE_LOCKS,
    UploadFile,
    abandon,
    cut_back,
)
from ledger.api.tus_protocol import (
    CHECKSUMS,
    EXTENSIONS,
    TUS_VERSION,
    ChecksumMismatch,
    http_date,
    is_offset_stream,
    metadata_text,
    parse_checksum,
    parse_defer_length,
    parse_metadata,
    parse_size,
    require_offset_stream,
    too_large,
    tus_middleware,
)
from ledger.app import Ledger
from ledger.errors import Conflict, Locked, NotFound
from ledger.maintenance.uploads import remove_ended
from ledger.model import Upload, UploadSpec
from ledger.settings import Settings
from ledger.states import UploadState

log = logging.getLogger(__name__)

FILE_LOCK_WAIT = 1.0  # a status request may hold the file's lock for a moment
MAX_PROCESSOR = 500
MAX_CONTENT_TYPE = 255
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")

# Uploads this process is writing right now: a second request for one of them is refused at
# once, without a trip to the database. The database lease is what holds across processes.
_writing: set[str] = set()


def _empty(status: int, headers: dict[str, str] | None = None) -> Response[Any]:
    """A response without a body (tus answers in headers)."""
    return Response(b"", status_code=status, media_type=MediaType.TEXT, headers=headers)


def _check_id(upload_id: str) -> None:
    if not _UPLOAD_ID.match(upload_id):
        raise NotFound(f"no upload {upload_id[:40]!r}")


def server_headers(settings: Settings) -> dict[str, str]:
    """What the server offers (OPTIONS)."""
    return {
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(EXTENSIONS),
        "Tus-Max-Size": str(settings.tus_max_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    }


def _offset_headers(upload: Upload) -> dict[str, str]:
    headers = {"Upload-Offset": str(upload.offset)}
    if upload.length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(upload.length)
    if upload.state == UploadState.RECEIVING:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return headers


async def _append(
    request: Request[Any, Any, Any],
    upload_id: str,
    ledger: Ledger,
    settings: Settings,
    owner: str | None,
) -> Response[Any]:
    """PATCH: append the body at Upload-Offset."""
    _check_id(upload_id)
    require_offset_stream(request.headers.get("content-type"))
    client_offset = parse_size("Upload-Offset", request.headers.get("upload-offset"))
    if client_offset is None:
        raise ClientException("send Upload-Offset: the number of bytes the upload has")
    length = parse_size("Upload-Length", request.headers.get("upload-length"))
    if length is not None and length > settings.tus_max_bytes:
        raise too_large(settings.tus_max_bytes, None)
    parse_checksum(request.headers.get("upload-checksum"))  # 400 before any byte is read
    if upload_id in _writing:
        raise Locked(f"upload {upload_id!r} is being written by another request; retry shortly")
    _writing.add(upload_id)
    try:
        upload = await ledger.uploads.get(upload_id, owner=owner)  # 404, 410 before any file
        if upload.state == UploadState.COMPLETE:
            return _already_complete(request, upload, client_offset)
        if _kept_in_store(settings, upload):  # no file: the ledger's lease alone fences
            token = secrets.token_hex(16)
            upload = await ledger.uploads.acquire(upload_id, token, owner=owner, length=length)
            if upload.state == UploadState.COMPLETE:
                return _already_complete(request, upload, client_offset)
            upload = await tus_store.receive(
                request, ledger, settings, upload, token, client_offset=client_offset
            )
            return _empty(204, _offset_headers(upload))
        # The file's lock first, then the lease: a live writer holds both, so whoever gets
        # the lock may take over a lease left by a writer that died.
        file = await UploadFile.open(Path(upload.path), wait=FILE_LOCK_WAIT)
        if file is None:
            raise Locked(f"upload {upload_id!r} is being written by another process")
        try:
            token = secrets.token_hex(16)
            upload = await ledger.uploads.acquire(
                upload_id, token, owner=owner, length=length, take_over=FILE_LOCKS
            )
            if upload.state == UploadState.COMPLETE:
                return _already_complete(request, upload, client_offset)
            upload = await tus_local.receive(
                request, ledger, settings, upload, token, file, client_offset=client_offset
            )
        finally:
            file.close()
    finally:
        _writing.discard(upload_id)
    return _empty(204, _offset_headers(upload))


def _kept_in_store(settings: Settings, upload: Upload) -> bool:
    """Whether the upload's bytes go into the object store as they arrive: with a store,
    every upload but one begun on this server's disk before uploads in progress were kept
    in the store (it ends there as it began)."""
    return settings.storage_url is not None and (
        upload.store_upload_id is not None or upload.offset == 0
    )


def _already_complete(
    request: Request[Any, Any, Any], upload: Upload, client_offset: int
) -> Response[Any]:
    """A retried last request: the upload is complete and its document exists."""
    if client_offset == upload.offset and not request.content_length:
        return _empty(204, _offset_headers(upload))
    raise Conflict(f"upload {upload.id!r} is complete ({upload.offset} bytes); nothing to append")


async def _terminate(upload_id: str, ledger: Ledger, owner: str | None) -> Response[Any]:
    _check_id(upload_id)
    await ledger.uploads.terminate(upload_id, owner=owner)
    # At once unless a request still holds the lease; then the periodic cleanup does it.
    await remove_ended(ledger, upload_id=upload_id)
    return _empty(204)


def _close(file: UploadFile | None) -> None:
    if file is not None:
        file.close()


def _checksum_mismatch(request: Request[Any, Any, Any], exc: ChecksumMismatch) -> Response[Problem]:
    return problem(request, 460, str(exc), title="Checksum Mismatch")


# Registered before the controller: a controller's routes get Litestar's automatic OPTIONS
# handler, and a handler registered earlier for the same path takes precedence over it.
@route(
    ["/uploads", "/uploads/{upload_id:str}"],
    http_method=[HttpMethod.OPTIONS],
    operation_id="tusOptions",
    status_code=204,
    include_in_schema=False,
    middleware=[tus_middleware],
)
async def tus_options(settings: Settings) -> Response[None]:
    """What this server offers (tus discovery); needs neither a key nor Tus-Resumable."""
    return _empty(204, server_headers(settings))


class TusController(Controller):
    """tus 1.0.0 (https://tus.io/protocols/resumable-upload)."""

    path = "/uploads"
    include_in_schema = False
    middleware = [tus_middleware]  # noqa: RUF012
    exception_handlers = {ChecksumMismatch: _checksum_mismatch}  # noqa: RUF012
    request_max_body_size = None  # bodies are read as streams, bounded by each upload

    @post("/", operation_id="createUpload", status_code=201)
    async def create(
        self,
        request: Request[Any, Any, Any],
        ledger: Ledger,
        settings: Settings,
        owner: str | None,
    ) -> Response[Any]:
        """Create an upload (creation, creation-defer-length), optionally with its first
        bytes (creation-with-upload)."""
        headers = request.headers
        length = parse_size("Upload-Length", headers.get("upload-length"))
        deferred = parse_defer_length(headers.get("upload-defer-length"))
        if (length is None) == (not deferred):
            raise ClientException("send either Upload-Length or Upload-Defer-Length: 1")
        if length is not None and length > settings.tus_max_bytes:
            raise too_large(settings.tus_max_bytes, None)
        with_body = is_offset_stream(headers.get("content-type"))
        if not with_body and request.content_length:
            raise HTTPException(
                status_code=415,
                detail="a creation request with bytes must be application/offset+octet-stream",
            )
        if with_body:
            parse_checksum(headers.get("upload-checksum"))
            announced = request.content_length
            if length is not None and announced is not None and announced > length:
                raise too_large(length, length)  # before any row or file exists
        raw_metadata = headers.get("upload-metadata")
        pairs = parse_metadata(raw_metadata)
        batch_id = metadata_text(pairs, "batch")
        if batch_id is None:
            raise ClientException(
                "Upload-Metadata must name the batch the file goes into: 'batch <base64 id>'"
            )
        processor = metadata_text(pairs, "processor")
        if processor is not None and len(processor) > MAX_PROCESSOR:
            raise ClientException(f"processor is longer than {MAX_PROCESSOR} characters")
        policy.check_upload_metadata(settings, processor, pairs)
        content_type = metadata_text(pairs, "filetype") or metadata_text(pairs, "type")
        filename = metadata_text(pairs, "filename") or metadata_text(pairs, "name")
        meta = {
            key: value.decode("utf-8", "replace") if value else None for key, value in pairs.items()
        }
        if content_type:
            meta["content_type"] = content_type[:MAX_CONTENT_TYPE]
        spec = UploadSpec(
            batch_id=batch_id,
            length=length,
            owner=owner,
            filename=clean_filename(filename),
            processor=processor,
            metadata_header=raw_metadata.strip() if raw_metadata else None,
            meta=meta,
        )
        # Bytes to store now (or an empty upload, complete at once): hold the lease from
        # the start so that no other request can write before this one has.
        writes = with_body or length == 0
        token = secrets.token_hex(16) if writes else None
        upload = await ledger.uploads.create(
            spec, folder=settings.storage / "uploads", writer_token=token
        )
        location = f"{request.url.path.rstrip('/')}/{upload.id}"
        in_store = settings.storage_url is not None
        if in_store and token is None:  # the store's multipart upload starts with the upload
            upload = await tus_store.start(ledger, settings, upload)
        if token is not None:
            _writing.add(upload.id)
            file: UploadFile | None = None
            try:
                if in_store:
                    upload = await tus_store.receive(
                        request, ledger, settings, upload, token,
                        client_offset=0, read_body=with_body,
                    )  # fmt: skip
                else:
                    file = await UploadFile.open(Path(upload.path), wait=FILE_LOCK_WAIT)
                    if file is None:  # nobody else knows the new upload's id yet: not expected
                        await ledger.uploads.release(upload.id, token)
                        raise Locked(f"upload {upload.id!r} is locked by another process")
                    upload = await tus_local.receive(
                        request, ledger, settings, upload, token, file,
                        client_offset=0, read_body=with_body,
                    )  # fmt: skip
            except ChecksumMismatch as exc:
                response = _checksum_mismatch(request, exc)
                response.headers["Location"] = location
                return response
            except HTTPException as exc:
                if exc.status_code == 413:  # its client was never told of it: nothing stays
                    _close(file)
                    await asyncio.shield(abandon(ledger, upload.id, owner))
                raise
            finally:
                _close(file)
                _writing.discard(upload.id)
        return _empty(201, {"Location": location, **_offset_headers(upload)})

    @head("/{upload_id:str}", operation_id="uploadOffset")
    async def status(
        self, upload_id: str, ledger: Ledger, settings: Settings, owner: str | None
    ) -> Response[None]:
        """How many bytes the upload has (Upload-Offset), and its length if known."""
        _check_id(upload_id)
        upload = await ledger.uploads.get(upload_id, owner=owner)
        if (
            upload.state == UploadState.RECEIVING
            and upload_id not in _writing
            and not _kept_in_store(settings, upload)
        ):

            async def durable() -> int:
                return (await ledger.uploads.get(upload_id, owner=owner)).offset

            await cut_back(Path(upload.path), upload.offset, durable)
        headers = _offset_headers(upload)
        if upload.metadata_header:
            headers["Upload-Metadata"] = upload.metadata_header
        headers["Cache-Control"] = "no-store"
        return _empty(200, headers)

    @patch("/{upload_id:str}", operation_id="appendUpload", status_code=204)
    async def append(
        self,
        request: Request[Any, Any, Any],
        upload_id: str,
        ledger: Ledger,
        settings: Settings,
        owner: str | None,
    ) -> Response[None]:
        """Append bytes at Upload-Offset (the core protocol)."""
        return await _append(request, upload_id, ledger, settings, owner)

    @delete("/{upload_id:str}", operation_id="terminateUpload", status_code=204)
    async def terminate(self, upload_id: str, ledger: Ledger, owner: str | None) -> Response[None]:
        """End an unfinished upload and remove its bytes (termination)."""
        return await _terminate(upload_id, ledger, owner)

    @post("/{upload_id:str}", operation_id="overrideUpload", status_code=204)
    async def override(
        self,
        request: Request[Any, Any, Any],
        upload_id: str,
        ledger: Ledger,
        settings: Settings,
        owner: str | None,
    ) -> Response[None]:
        """PATCH or DELETE sent as POST with X-HTTP-Method-Override (for clients behind
        proxies that only pass GET and POST)."""
        method = request.headers.get("x-http-method-override", "").strip().upper()
        if method == "PATCH":
            return await _append(request, upload_id, ledger, settings, owner)
        if method == "DELETE":
            return await _terminate(upload_id, ledger, owner)
        raise MethodNotAllowedException(
            detail="POST to an upload needs X-HTTP-Method-Override: PATCH or DELETE"
        )
