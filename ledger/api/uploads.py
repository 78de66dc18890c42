"""Resumable uploads: the tus 1.0.0 protocol at ``/api/v1/uploads``.

Core protocol plus creation, creation-with-upload, creation-defer-length, expiration,
checksum (sha1, sha256, md5) and termination. The upload's state is a ledger row (see
:mod:`ledger.uploads.state`); its bytes are appended to ``storage/uploads/<id>`` as they
arrive. Each request that writes holds the upload's lease in the database (several server
processes may share uploads), this process's own set of uploads in progress, and an
exclusive lock on the file; a second writer is answered 423 and the bytes stay right.

Received bytes count once they are on disk: at the end of a request, every
``tus_commit_bytes`` during a long one, and when the client goes away mid-body. Bytes of a
chunk with a checksum count only after the checksum matched (else 460, and they are cut
off). When the last byte counts, the same transaction completes the upload and creates its
document. A file longer than the counted offset (a crash between write and commit) is cut
back before anything else reads or writes it.

The routes are left out of the OpenAPI schema: they speak the tus protocol (headers, empty
bodies), documented in docs/api.md, not JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import ClientException, HTTPException, MethodNotAllowedException

from ledger.api import object_uploads, policy
from ledger.api.errors import problem
from ledger.api.multipart import clean_filename
from ledger.api.schemas import Problem
from ledger.api.tus_files import (
    FILE_LOCKS,
    UploadFile,
    abandon,
    cut_back,
    sha256_of,
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
    tus_middleware,
)
from ledger.app import Ledger
from ledger.errors import Conflict, Locked, NotFound
from ledger.maintenance.uploads import remove_ended
from ledger.records import Upload, UploadSpec
from ledger.settings import Settings
from ledger.states import UploadState
from ledger.storage import objects

log = logging.getLogger(__name__)

FLUSH_BYTES = 1024 * 1024  # bytes gathered before one write in a thread
FILE_LOCK_WAIT = 1.0  # a status request may hold the file's lock for a moment
MAX_PROCESSOR = 500
MAX_CONTENT_TYPE = 255
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")

# Uploads this process is writing right now: a second request for one of them is refused at
# once, without a trip to the database. The database lease is what holds across processes.
_writing: set[str] = set()


class _ClientGone(Exception):
    """The client closed the connection, or its body stalled, before the body ended."""


class _TooLarge(Exception):
    pass


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


async def _body(request: Request[Any, Any, Any], idle_seconds: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; :class:`_ClientGone` if the client leaves (or stalls
    for ``idle_seconds``) before its end."""
    while True:
        try:
            message = await asyncio.wait_for(request.receive(), idle_seconds)
        except TimeoutError:
            raise _ClientGone from None
        if message["type"] == "http.disconnect":
            raise _ClientGone
        if message["type"] == "http.request":
            if body := message.get("body", b""):
                yield body
            if not message.get("more_body", False):
                return


def _too_large(limit: int, length: int | None) -> HTTPException:
    what = f"the Upload-Length ({length})" if length is not None else "Tus-Max-Size"
    return HTTPException(status_code=413, detail=f"the upload would grow beyond {what}: {limit}")


async def _receive(
    request: Request[Any, Any, Any],
    ledger: Ledger,
    settings: Settings,
    upload: Upload,
    token: str,
    file: UploadFile,
    *,
    client_offset: int | None,
    read_body: bool = True,
) -> Upload:
    """Append the request body to the upload held by ``token`` (whose ``file`` the caller
    has open and locked, and closes after this returns) and count it; complete the upload
    when its last byte is in. Always gives the lease up. Returns the upload as it is now;
    raises for the protocol's errors (409, 413, 460...)."""
    released = False
    try:
        durable = upload.offset
        size = await file.size()
        if size > durable:  # bytes written after the last count (a crash): not received
            await file.truncate(durable)
        elif size < durable:  # the file lost bytes the ledger counted (storage trouble)
            log.warning(
                "upload %s: file has %d bytes, the ledger counted %d; counting %d",
                upload.id,
                size,
                durable,
                size,
            )
            upload = await ledger.uploads.renew(upload.id, token, offset=size)
            durable = size
        if client_offset is not None and client_offset != durable:
            raise Conflict(
                f"Upload-Offset is {client_offset} but the upload has {durable} bytes; "
                f"resume from {durable}"
            )
        limit = upload.length if upload.length is not None else settings.tus_max_bytes
        announced = request.content_length if read_body else 0
        if announced is not None and durable + announced > limit:
            raise _too_large(limit, upload.length)
        checksum = parse_checksum(request.headers.get("upload-checksum")) if read_body else None
        hasher = CHECKSUMS[checksum[0]]() if checksum else None
        start = position = durable
        pending: list[bytes] = []
        pending_size = 0
        renewed = time.monotonic()
        gone = False

        async def flush() -> None:
            nonlocal position, pending_size
            if pending:
                data = b"".join(pending)
                pending.clear()
                pending_size = 0
                await file.write_at(data, position, hasher)
                position += len(data)

        try:
            if read_body:
                async for chunk in _body(request, settings.tus_idle_seconds):
                    if position + pending_size + len(chunk) > limit:
                        raise _TooLarge
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= FLUSH_BYTES:
                        await flush()
                    if hasher is None and position - durable >= settings.tus_commit_bytes:
                        # A checkpoint: what is on disk now survives a crash of this process.
                        await file.sync()
                        upload = await ledger.uploads.renew(upload.id, token, offset=position)
                        durable, renewed = position, time.monotonic()
                    elif time.monotonic() - renewed > settings.tus_lease_seconds / 3:
                        upload = await ledger.uploads.renew(upload.id, token)
                        renewed = time.monotonic()
            await flush()
        except _ClientGone:
            await flush()
            gone = True
        except _TooLarge:
            await file.truncate(durable)
            raise _too_large(limit, upload.length) from None

        # Nothing of a checksummed chunk was counted yet: keep all of it or none.
        if checksum is not None and hasher is not None and (gone or hasher.digest() != checksum[1]):
            await file.truncate(start)
            if gone:
                return upload
            raise ChecksumMismatch(
                f"the {checksum[0]} checksum of the {position - start} bytes received does "
                "not match Upload-Checksum; they were discarded"
            )
        await file.sync()
        if upload.length is not None and position == upload.length:
            digest = await _hash_holding(ledger, settings, upload, token)
            mtime_ns = await file.mtime_ns()
            stored: objects.ObjectInfo | None = None
            if settings.storage_url is not None:
                held = upload

                async def renew() -> None:
                    await ledger.uploads.renew(held.id, token)

                stored = await object_uploads.store_upload(settings, upload, renew)
                mtime_ns = stored.last_modified_ns
            try:
                upload = await ledger.uploads.complete(
                    upload.id,
                    token,
                    sha256=digest,
                    size=position,
                    mtime_ns=mtime_ns,
                    stored_as=(str(stored.url), stored.etag) if stored is not None else None,
                )
            except Conflict:
                # The batch was cancelled or taken meanwhile: keep the bytes, say why.
                if stored is not None:
                    await object_uploads.remove_object(settings, stored)
                await ledger.uploads.commit(upload.id, token, offset=position)
                released = True
                raise
            released = True
            if stored is not None:  # the store holds it now; the document names the object
                await object_uploads.remove_local(upload.path)
            log.info(
                "upload %s complete: %d bytes, document %s in batch %s",
                upload.id,
                position,
                upload.document_id,
                upload.batch_id,
            )
        else:
            upload = await ledger.uploads.commit(upload.id, token, offset=position)
            released = True
        return upload
    finally:
        if not released:
            await asyncio.shield(ledger.uploads.release(upload.id, token))


async def _hash_holding(ledger: Ledger, settings: Settings, upload: Upload, token: str) -> str:
    """The whole file's SHA-256 (read in a thread), renewing the lease while it is read:
    a large file on a slow disk may take longer than one lease."""
    hashing = asyncio.ensure_future(sha256_of(Path(upload.path)))
    try:
        while True:
            done, _ = await asyncio.wait({hashing}, timeout=settings.tus_lease_seconds / 3)
            if done:
                return hashing.result()
            await ledger.uploads.renew(upload.id, token)
    finally:
        if not hashing.done():
            hashing.cancel()


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
        raise _too_large(settings.tus_max_bytes, None)
    parse_checksum(request.headers.get("upload-checksum"))  # 400 before any byte is read
    if upload_id in _writing:
        raise Locked(f"upload {upload_id!r} is being written by another request; retry shortly")
    _writing.add(upload_id)
    try:
        upload = await ledger.uploads.get(upload_id, owner=owner)  # 404, 410 before any file
        if upload.state == UploadState.COMPLETE:
            return _already_complete(request, upload, client_offset)
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
            upload = await _receive(
                request, ledger, settings, upload, token, file, client_offset=client_offset
            )
        finally:
            file.close()
    finally:
        _writing.discard(upload_id)
    return _empty(204, _offset_headers(upload))


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
            raise _too_large(settings.tus_max_bytes, None)
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
                raise _too_large(length, length)  # before any row or file exists
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
        if token is not None:
            _writing.add(upload.id)
            file = await UploadFile.open(Path(upload.path), wait=FILE_LOCK_WAIT)
            try:
                if file is None:  # nobody else knows the new upload's id yet: not expected
                    await ledger.uploads.release(upload.id, token)
                    raise Locked(f"upload {upload.id!r} is locked by another process")
                upload = await _receive(
                    request,
                    ledger,
                    settings,
                    upload,
                    token,
                    file,
                    client_offset=0,
                    read_body=with_body,
                )
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
    async def status(self, upload_id: str, ledger: Ledger, owner: str | None) -> Response[None]:
        """How many bytes the upload has (Upload-Offset), and its length if known."""
        _check_id(upload_id)
        upload = await ledger.uploads.get(upload_id, owner=owner)
        if upload.state == UploadState.RECEIVING and upload_id not in _writing:

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
