"""What a new resumable upload must pass before its row exists: its batch and its tenant's quota.

The batch id an upload names is reserved for the upload's tenant when the upload is created:
the batch row is made then (empty, owned by the tenant), not when the last byte arrives, so
no other tenant can take the id while the bytes are on their way. Two tenants racing for one
id meet on the batch's primary key; the loser's transaction fails and, run again, finds the
id taken (Conflict).

The quota bounds the disk a tenant's unfinished uploads may claim: the sum of the lengths
they declare. A deferred length may grow to the largest upload, so it counts as that.
Checking and inserting happen under one lock per tenant, so concurrent creations cannot
both pass a check that only one of them fits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import uploads
from ledger.errors import Conflict, QuotaExceeded
from ledger.model import BatchSpec, UploadSpec
from ledger.queue import submit
from ledger.states import BatchState, UploadState

DEFAULT_PROCESSOR = "ingest"


async def reserve_batch(
    conn: AsyncConnection, spec: UploadSpec, *, now: datetime, default_max_attempts: int
) -> None:
    """Make sure ``spec.batch_id`` is the uploader's: create it empty when it does not exist;
    Conflict when another tenant holds it or it is cancelled."""
    submit._check_batch_id(spec.batch_id)
    batch = await submit.load_batch(conn, spec.batch_id, for_update=True)
    if batch is None:
        await submit.submit(
            conn,
            BatchSpec(
                id=spec.batch_id,
                processor=spec.processor or DEFAULT_PROCESSOR,
                owner=spec.owner,
            ),
            [],
            now=now,
            default_max_attempts=default_max_attempts,
        )
        return
    if batch.owner != spec.owner:
        raise Conflict(f"batch id {spec.batch_id!r} is not available; choose another id")
    if batch.state == BatchState.CANCELLED:
        raise Conflict(f"batch {spec.batch_id!r} is cancelled; upload into a new batch")


async def declared_bytes(
    conn: AsyncConnection, owner: str | None, *, now: datetime, deferred_as: int
) -> int:
    """Bytes the owner's unfinished, unexpired uploads declare (a deferred one: ``deferred_as``)."""
    owned = uploads.c.owner.is_(None) if owner is None else uploads.c.owner == owner
    total = (
        await conn.execute(
            select(
                func.coalesce(func.sum(func.coalesce(uploads.c.upload_length, deferred_as)), 0)
            ).where(
                owned,
                uploads.c.state == UploadState.RECEIVING.value,
                uploads.c.expires_at > now,
            )
        )
    ).scalar_one()
    return int(total)


async def check_quota(
    conn: AsyncConnection,
    spec: UploadSpec,
    *,
    now: datetime,
    quota_bytes: int,
    max_upload_bytes: int,
) -> None:
    """QuotaExceeded unless the new upload fits in its tenant's quota. Holds the tenant's
    lock until the transaction ends: the caller inserts the upload in the same transaction."""
    await backend_of(conn).lock_for_transaction(conn, f"ledger-upload-quota:{spec.owner!r}")
    wanted = spec.length if spec.length is not None else max_upload_bytes
    held = await declared_bytes(conn, spec.owner, now=now, deferred_as=max_upload_bytes)
    if held + wanted > quota_bytes:
        raise QuotaExceeded(
            f"this upload ({wanted} bytes) would take your unfinished uploads past their "
            f"quota of {quota_bytes} bytes ({held} in use); finish or terminate some first"
        )
