"""Resumable (tus) uploads: the rows that make an upload survive restarts and crashes.

An upload's row says how many bytes of its file are durable (``upload_offset``); the face
that receives the bytes cuts a longer file back to it before writing, so file and row agree
after any crash. One writer at a time holds the upload through a lease (``writer_token``
until ``locked_until``), taken and renewed by guarded UPDATEs, so several server processes
can share uploads. Every write that advances the offset is fenced by the writer's token.

When the last byte is counted, the same transaction marks the upload complete and creates
its document (and the batch, when there is none yet): a retried final request finds the
upload complete and creates nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import documents, uploads
from ledger.errors import Conflict, Gone, InvalidInput, LeaseLost, Locked, NotFound
from ledger.model import BatchSpec, SourceSpec, Upload, UploadSpec
from ledger.queue import submit
from ledger.states import UploadState
from ledger.uploads import admission as upload_admission

log = logging.getLogger(__name__)

MAX_METADATA_HEADER = 8192


def new_upload_id() -> str:
    """An unguessable id (128 random bits, 32 hex digits): the last part of the upload URL."""
    return secrets.token_hex(16)


def new_writer_token() -> str:
    return secrets.token_hex(16)


def upload_from_row(row: Row[Any]) -> Upload:
    m = row._mapping
    return Upload(
        id=m["id"],
        owner=m["owner"],
        state=UploadState(m["state"]),
        length=m["upload_length"],
        offset=int(m["upload_offset"]),
        metadata_header=m["metadata_header"],
        meta=dict(m["meta"] or {}),
        batch_id=m["batch_id"],
        filename=m["filename"],
        processor=m["processor"],
        path=m["path"],
        sha256=m["sha256"],
        document_id=m["document_id"],
        writer_token=m["writer_token"],
        locked_until=m["locked_until"],
        expires_at=m["expires_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        ended_at=m["ended_at"],
        store_upload_id=m["store_upload_id"],
        store_key=m["store_key"],
    )


async def _load(
    conn: AsyncConnection, upload_id: str, *, owner: str | None, for_update: bool = False
) -> Upload:
    """The upload, or NotFound (also when it is another tenant's: they look the same)."""
    query = select(uploads).where(uploads.c.id == upload_id)
    if owner is not None:
        query = query.where(uploads.c.owner == owner)
    if for_update:
        query = backend_of(conn).lock_rows(query, of=uploads)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no upload {upload_id!r}")
    return upload_from_row(row)


def _check_available(upload: Upload, now: datetime) -> None:
    """Terminated uploads are gone for good (404); expired ones are remembered (410)."""
    if upload.state == UploadState.TERMINATED:
        raise NotFound(f"upload {upload.id!r} was terminated")
    if upload.state == UploadState.EXPIRED or (
        upload.state == UploadState.RECEIVING and upload.expires_at <= now
    ):
        raise Gone(f"upload {upload.id!r} expired unfinished; start a new upload")


async def create(
    conn: AsyncConnection,
    spec: UploadSpec,
    *,
    folder: Path,
    now: datetime,
    expiry_seconds: float,
    writer_token: str | None = None,
    lease_seconds: float = 0.0,
    quota_bytes: int,
    max_upload_bytes: int,
    default_max_attempts: int,
) -> Upload:
    """A new upload whose file will be ``folder/<id>``; held by ``writer_token`` when given
    (an upload created with its first bytes). Admits it first (see
    :mod:`ledger.uploads.admission`): within its tenant's quota, and its batch reserved
    for its tenant, so a client learns of a bad batch before sending any bytes."""
    if spec.length is not None and spec.length < 0:
        raise InvalidInput("Upload-Length must not be negative")
    if spec.metadata_header is not None and len(spec.metadata_header) > MAX_METADATA_HEADER:
        raise InvalidInput(f"Upload-Metadata is longer than {MAX_METADATA_HEADER} characters")
    await upload_admission.check_quota(
        conn, spec, now=now, quota_bytes=quota_bytes, max_upload_bytes=max_upload_bytes
    )
    await upload_admission.reserve_batch(
        conn, spec, now=now, default_max_attempts=default_max_attempts
    )
    upload_id = new_upload_id()
    locked_until = now + timedelta(seconds=lease_seconds) if writer_token else None
    row = (
        await conn.execute(
            uploads.insert()
            .values(
                id=upload_id,
                owner=spec.owner,
                state=UploadState.RECEIVING.value,
                upload_length=spec.length,
                upload_offset=0,
                metadata_header=spec.metadata_header,
                meta=spec.meta,
                batch_id=spec.batch_id,
                filename=spec.filename,
                processor=spec.processor,
                path=str(folder / upload_id),
                writer_token=writer_token,
                locked_until=locked_until,
                expires_at=now + timedelta(seconds=expiry_seconds),
                created_at=now,
                updated_at=now,
            )
            .returning(*uploads.c)
        )
    ).one()
    return upload_from_row(row)


async def get(conn: AsyncConnection, upload_id: str, *, owner: str | None, now: datetime) -> Upload:
    """The upload if the caller may still use it: NotFound (missing, another tenant's,
    terminated) or Gone (expired)."""
    upload = await _load(conn, upload_id, owner=owner)
    _check_available(upload, now)
    return upload


async def acquire(
    conn: AsyncConnection,
    upload_id: str,
    *,
    owner: str | None,
    token: str,
    now: datetime,
    lease_seconds: float,
    length: int | None = None,
    take_over: bool = False,
) -> Upload:
    """Take the upload's writer lease for ``token`` and, when given, set its deferred length.

    A complete upload is returned as it is, without a lease (a retried final request finds
    it so). :class:`Locked` while another writer's lease runs, unless ``take_over``: the
    caller holds the upload file's lock, which every live writer keeps for as long as its
    lease, so the lease belongs to a writer that died. NotFound, Gone as for :func:`get`;
    InvalidInput for a length that contradicts the known one.
    """
    upload = await _load(conn, upload_id, owner=owner, for_update=True)
    _check_available(upload, now)
    if upload.state == UploadState.COMPLETE:
        return upload
    if upload.writer_active(now):
        if not take_over:
            raise Locked(f"upload {upload_id!r} is being written by another request; retry shortly")
        log.warning("upload %s: taking over the lease of a writer that is gone", upload_id)
    values: dict[str, Any] = {
        "writer_token": token,
        "locked_until": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
    }
    if length is not None:
        if upload.length is None:
            if length < upload.offset:
                raise InvalidInput(
                    f"Upload-Length {length} is less than the bytes received ({upload.offset})"
                )
            values["upload_length"] = length
        elif upload.length != length:
            raise InvalidInput(f"Upload-Length is {upload.length} already; it cannot change")
    guard = [uploads.c.id == upload_id, uploads.c.state == UploadState.RECEIVING.value]
    if not take_over:
        guard.append(or_(uploads.c.writer_token.is_(None), uploads.c.locked_until <= now))
    row = (
        await conn.execute(update(uploads).where(*guard).values(**values).returning(*uploads.c))
    ).first()
    if row is None:
        raise Locked(f"upload {upload_id!r} is being written by another request; retry shortly")
    return upload_from_row(row)


def _fenced(upload_id: str, token: str) -> Any:
    return and_(
        uploads.c.id == upload_id,
        uploads.c.writer_token == token,
        uploads.c.state == UploadState.RECEIVING.value,
    )


async def renew(
    conn: AsyncConnection,
    upload_id: str,
    *,
    token: str,
    now: datetime,
    lease_seconds: float,
    offset: int | None = None,
    expiry_seconds: float | None = None,
) -> Upload:
    """Extend the writer's lease and, when given, record a new durable ``offset``.

    :class:`LeaseLost` when the token no longer holds the upload (terminated, or taken over
    after the lease ran out): the caller must stop writing.
    """
    values: dict[str, Any] = {
        "locked_until": now + timedelta(seconds=lease_seconds),
        "updated_at": now,
    }
    if offset is not None:
        values["upload_offset"] = offset
    if expiry_seconds is not None:
        values["expires_at"] = now + timedelta(seconds=expiry_seconds)
    row = (
        await conn.execute(
            update(uploads).where(_fenced(upload_id, token)).values(**values).returning(*uploads.c)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"this request no longer holds upload {upload_id!r}")
    return upload_from_row(row)


async def commit(
    conn: AsyncConnection,
    upload_id: str,
    *,
    token: str,
    offset: int,
    now: datetime,
    expiry_seconds: float,
) -> Upload:
    """Record ``offset`` durable bytes, push the expiry back and give the lease up."""
    row = (
        await conn.execute(
            update(uploads)
            .where(_fenced(upload_id, token))
            .values(
                upload_offset=offset,
                expires_at=now + timedelta(seconds=expiry_seconds),
                writer_token=None,
                locked_until=None,
                updated_at=now,
            )
            .returning(*uploads.c)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"this request no longer holds upload {upload_id!r}")
    return upload_from_row(row)


async def release(conn: AsyncConnection, upload_id: str, *, token: str, now: datetime) -> None:
    """Give the lease up without changing anything else (nothing happens if it was lost)."""
    await conn.execute(
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.writer_token == token)
        .values(writer_token=None, locked_until=None)
    )


async def complete(
    conn: AsyncConnection,
    upload_id: str,
    *,
    token: str,
    sha256: str,
    size: int,
    mtime_ns: int | None,
    now: datetime,
    default_max_attempts: int,
    stored_as: tuple[str, str] | None = None,
) -> Upload:
    """Count the last bytes, mark the upload complete and create its document, all at once.

    ``stored_as`` (an object URL and its ETag): the file was moved into the object store
    (``LEDGER_STORAGE_URL``) and the document names that object instead of the file.

    The document goes into the upload's batch, which is created (owned by the upload's
    tenant, with the upload's processor) when it does not exist. Fenced by ``token``:
    :class:`LeaseLost` if the request no longer holds the upload; :class:`Conflict` if the
    batch was cancelled or taken meanwhile (then nothing changes).
    """
    upload = await _load(conn, upload_id, owner=None, for_update=True)
    if upload.state != UploadState.RECEIVING or upload.writer_token != token:
        raise LeaseLost(f"this request no longer holds upload {upload_id!r}")
    if upload.length != size:
        raise InvalidInput(f"upload {upload_id!r} has {size} bytes, not {upload.length}")
    batch = await submit.load_batch(conn, upload.batch_id, for_update=True)
    if batch is None:
        spec = BatchSpec(
            id=upload.batch_id, processor=upload.processor or "ingest", owner=upload.owner
        )
    else:
        if batch.owner != upload.owner:
            raise Conflict(f"batch id {upload.batch_id!r} is not available")
        spec = BatchSpec(
            id=batch.id,
            name=batch.name,
            processor=batch.processor,
            options=dict(batch.options),
            priority=batch.priority,
            max_attempts=batch.max_attempts,
            owner=batch.owner,
        )
    meta = {"filename": upload.filename, "upload_id": upload.id}
    if upload.meta.get("content_type"):
        meta["content_type"] = upload.meta["content_type"]
    path = upload.path
    if stored_as is not None:
        path, meta["etag"] = stored_as
    source = SourceSpec(source=path, size=size, mtime_ns=mtime_ns, sha256=sha256, meta=meta)
    await submit.submit(conn, spec, [source], now=now, default_max_attempts=default_max_attempts)
    document_id = (
        await conn.execute(
            select(documents.c.id).where(
                documents.c.batch_id == upload.batch_id, documents.c.source == path
            )
        )
    ).scalar_one()
    row = (
        await conn.execute(
            update(uploads)
            .where(_fenced(upload_id, token))
            .values(
                state=UploadState.COMPLETE.value,
                upload_offset=size,
                sha256=sha256,
                document_id=document_id,
                writer_token=None,
                locked_until=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(*uploads.c)
        )
    ).one()
    return upload_from_row(row)


async def terminate(
    conn: AsyncConnection, upload_id: str, *, owner: str | None, now: datetime
) -> Upload:
    """End an unfinished upload at the client's request. Its file is removed at once when no
    request is writing it, else by the cleanup once that request's lease has run out.

    A complete upload cannot be terminated: its file is its document's source (Conflict).
    """
    upload = await _load(conn, upload_id, owner=owner, for_update=True)
    _check_available(upload, now)
    if upload.state == UploadState.COMPLETE:
        raise Conflict(
            f"upload {upload_id!r} is complete; its file is the source of document "
            f"{upload.document_id}"
        )
    # The lease (if any) stays as it is: it tells the cleanup to wait for the writer to stop.
    row = (
        await conn.execute(
            update(uploads)
            .where(uploads.c.id == upload_id, uploads.c.state == UploadState.RECEIVING.value)
            .values(state=UploadState.TERMINATED.value, ended_at=now, updated_at=now)
            .returning(*uploads.c)
        )
    ).one()
    return upload_from_row(row)


async def expire(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """Mark up to ``limit`` unfinished uploads past their expiry (and not being written)
    expired. Returns how many."""
    due = (
        select(uploads.c.id)
        .where(
            uploads.c.state == UploadState.RECEIVING.value,
            uploads.c.expires_at <= now,
            or_(uploads.c.locked_until.is_(None), uploads.c.locked_until <= now),
        )
        .limit(limit)
    )
    ids = list((await conn.execute(due)).scalars())
    if not ids:
        return 0
    result = await conn.execute(
        update(uploads)
        .where(
            uploads.c.id.in_(ids),
            uploads.c.state == UploadState.RECEIVING.value,
            uploads.c.expires_at <= now,
            or_(uploads.c.locked_until.is_(None), uploads.c.locked_until <= now),
        )
        .values(state=UploadState.EXPIRED.value, ended_at=now, updated_at=now)
    )
    return int(result.rowcount)


async def files_to_remove(
    conn: AsyncConnection, *, now: datetime, limit: int, upload_id: str | None = None
) -> list[tuple[str, str]]:
    """(id, path) of ended uploads whose file is still there and that nobody is writing."""
    query = (
        select(uploads.c.id, uploads.c.path)
        .where(
            uploads.c.state.in_([UploadState.TERMINATED.value, UploadState.EXPIRED.value]),
            uploads.c.files_removed_at.is_(None),
            or_(uploads.c.locked_until.is_(None), uploads.c.locked_until <= now),
        )
        .order_by(uploads.c.id)
        .limit(limit)
    )
    if upload_id is not None:
        query = query.where(uploads.c.id == upload_id)
    return [(r.id, r.path) for r in (await conn.execute(query)).all()]


async def files_removed(conn: AsyncConnection, ids: Sequence[str], *, now: datetime) -> None:
    """Record that the files of these ended uploads are gone."""
    if ids:
        await conn.execute(
            update(uploads)
            .where(
                uploads.c.id.in_(list(ids)),
                uploads.c.state.in_([UploadState.TERMINATED.value, UploadState.EXPIRED.value]),
            )
            .values(files_removed_at=now, writer_token=None, locked_until=None)
        )
