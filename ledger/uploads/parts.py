"""A resumable upload kept in the object store while it arrives: the ledger's record of it.

With ``LEDGER_STORAGE_URL`` an upload's bytes go into one multipart upload of the store
(``uploads.store_upload_id``). Every part the store holds is a row of ``upload_parts``
(number, ETag, offset range); the bytes past the last part, fewer than one part, are rows
of ``upload_tails``, because the store takes no part under its minimum but the last and
cannot give an unfinished part back. So the upload's offset is always
``end of the last part + the tails' bytes``, and one transaction, fenced by the writer's
token, records what the store (or the tail) holds and advances the offset together: a
crash of the server at any moment leaves an offset that counts exactly what is kept, and
any server can take the next request.

Every function takes ``(conn, now)`` first, so a caller runs it as one transaction with
``ledger.runner.run(functools.partial(fn, ...))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import upload_parts, upload_tails, uploads
from ledger.errors import LeaseLost, LedgerError
from ledger.model import Upload
from ledger.states import UploadState
from ledger.uploads.state import upload_from_row


class StoreMismatch(LedgerError):
    """The upload's parts and tails do not add up to its offset; nothing was changed."""


@dataclass(frozen=True)
class StoredPart:
    """One part the store holds: bytes ``[start, start + size)`` of the upload."""

    number: int
    etag: str
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(frozen=True)
class StoreState:
    """Where an upload kept in the store stands: its parts hold ``[0, parts_end)``, its
    ``tail`` the bytes from there to the offset; the next part gets ``next_number``."""

    parts_end: int
    next_number: int
    tail: bytes


async def start(
    conn: AsyncConnection, now: datetime, *, upload_id: str, store_upload_id: str, store_key: str
) -> Upload | None:
    """Record the store's multipart upload (its id, and the object ``store_key`` it makes)
    of an unfinished upload that has none yet; None when it has one already (or has
    ended): the caller aborts the one it started."""
    row = (
        await conn.execute(
            update(uploads)
            .where(
                uploads.c.id == upload_id,
                uploads.c.store_upload_id.is_(None),
                uploads.c.state == UploadState.RECEIVING.value,
            )
            .values(store_upload_id=store_upload_id, store_key=store_key, updated_at=now)
            .returning(*uploads.c)
        )
    ).first()
    return upload_from_row(row) if row is not None else None


async def state(conn: AsyncConnection, now: datetime, *, upload: Upload) -> StoreState:
    """The parts' end and the tail's bytes of ``upload`` (less than one part in memory)."""
    last = (
        await conn.execute(
            select(upload_parts.c.part_number, upload_parts.c.start_offset, upload_parts.c.size)
            .where(upload_parts.c.upload_id == upload.id)
            .order_by(upload_parts.c.part_number.desc())
            .limit(1)
        )
    ).first()
    parts_end = 0 if last is None else int(last.start_offset) + int(last.size)
    tails = (
        await conn.execute(
            select(upload_tails.c.start_offset, upload_tails.c.data)
            .where(upload_tails.c.upload_id == upload.id)
            .order_by(upload_tails.c.start_offset)
        )
    ).all()
    tail = bytearray()
    for row in tails:
        if parts_end + len(tail) != int(row.start_offset):
            raise StoreMismatch(f"upload {upload.id!r}: its tail has a gap at {row.start_offset}")
        tail += row.data
    if parts_end + len(tail) != upload.offset:
        raise StoreMismatch(
            f"upload {upload.id!r}: the store and tail hold {parts_end + len(tail)} bytes, "
            f"the ledger counted {upload.offset}"
        )
    return StoreState(parts_end, 1 if last is None else int(last.part_number) + 1, bytes(tail))


async def record(
    conn: AsyncConnection,
    now: datetime,
    *,
    upload_id: str,
    token: str,
    parts: Sequence[StoredPart],
    tail: tuple[int, bytes] | None,
    offset: int,
    lease_seconds: float,
    expiry_seconds: float,
    release: bool,
) -> Upload:
    """Record new ``parts`` and a new ``tail`` segment (start, bytes), advance the offset
    to ``offset`` and push the expiry back, all fenced by ``token`` (:class:`LeaseLost`
    when it no longer holds the upload, or when the offset would go back). Tail segments
    that the new parts contain are dropped. With ``release`` the lease is given up, else
    renewed."""
    lease = (
        {"writer_token": None, "locked_until": None}
        if release
        else {"locked_until": now + timedelta(seconds=lease_seconds)}
    )
    row = (
        await conn.execute(
            update(uploads)
            .where(
                uploads.c.id == upload_id,
                uploads.c.writer_token == token,
                uploads.c.state == UploadState.RECEIVING.value,
                uploads.c.upload_offset <= offset,
            )
            .values(
                upload_offset=offset,
                expires_at=now + timedelta(seconds=expiry_seconds),
                updated_at=now,
                **lease,
            )
            .returning(*uploads.c)
        )
    ).first()
    if row is None:
        raise LeaseLost(f"this request no longer holds upload {upload_id!r}")
    if parts:
        await conn.execute(
            delete(upload_tails).where(
                upload_tails.c.upload_id == upload_id,
                upload_tails.c.start_offset < parts[-1].end,
            )
        )
        await conn.execute(
            insert(upload_parts),
            [
                {
                    "upload_id": upload_id,
                    "part_number": p.number,
                    "etag": p.etag,
                    "start_offset": p.start,
                    "size": p.size,
                }
                for p in parts
            ],
        )
    if tail is not None and tail[1]:
        await conn.execute(
            insert(upload_tails).values(upload_id=upload_id, start_offset=tail[0], data=tail[1])
        )
    return upload_from_row(row)


async def parts(conn: AsyncConnection, now: datetime, *, upload_id: str) -> list[StoredPart]:
    """The upload's parts in order (what completing its multipart upload names)."""
    rows = await conn.execute(
        select(upload_parts)
        .where(upload_parts.c.upload_id == upload_id)
        .order_by(upload_parts.c.part_number)
    )
    return [StoredPart(r.part_number, r.etag, int(r.start_offset), int(r.size)) for r in rows]


async def in_store(conn: AsyncConnection, now: datetime, *, ids: Sequence[str]) -> list[Upload]:
    """Those of these uploads that have a multipart upload in the store."""
    if not ids:
        return []
    rows = await conn.execute(
        select(uploads).where(uploads.c.id.in_(list(ids)), uploads.c.store_upload_id.is_not(None))
    )
    return [upload_from_row(r) for r in rows]


async def forget(conn: AsyncConnection, now: datetime, *, ids: Sequence[str]) -> None:
    """Drop the parts and tails of these uploads (ended and aborted in the store, or
    complete) and their multipart upload's id."""
    if not ids:
        return
    await conn.execute(delete(upload_tails).where(upload_tails.c.upload_id.in_(list(ids))))
    await conn.execute(delete(upload_parts).where(upload_parts.c.upload_id.in_(list(ids))))
    await conn.execute(
        update(uploads)
        .where(uploads.c.id.in_(list(ids)), uploads.c.state != UploadState.RECEIVING.value)
        .values(store_upload_id=None, store_key=None)
    )
