"""Idempotent batch creation for callers that resend requests (the HTTP API).

The caller hands a fingerprint of its whole request. The first request that creates a batch
records it beside the batch, in the same transaction. A later request with the same batch id
is answered from the record: the same fingerprint gets the batch as it is (the sources are
not read again), a different one is a :class:`Conflict`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import batch_requests
from ledger.errors import Conflict
from ledger.model import BatchSpec, SourceSpec, SubmitResult, UnchangedSkip
from ledger.queue import submit


async def create_batch(
    conn: AsyncConnection,
    spec: BatchSpec,
    sources: Iterable[SourceSpec],
    *,
    fingerprint: str,
    now: datetime,
    default_max_attempts: int,
    skip_unchanged: UnchangedSkip | None = None,
) -> SubmitResult:
    """Create the batch with its documents, or return the one an identical request made."""
    if spec.id is not None:
        existing = await submit.load_batch(conn, spec.id, for_update=True)
        if existing is not None:
            if existing.owner != spec.owner:
                raise Conflict(f"batch id {spec.id!r} is not available; choose another id")
            recorded = (
                await conn.execute(
                    select(batch_requests.c.fingerprint).where(batch_requests.c.batch_id == spec.id)
                )
            ).scalar_one_or_none()
            if recorded == fingerprint:
                return SubmitResult(batch=existing, created=False, added=0, known=0)
            if recorded is not None:
                raise Conflict(
                    f"batch {spec.id!r} already exists and was created by a different request; "
                    "resend the original request unchanged, or use a new batch id"
                )
            # Made by another face (the CLI): the ledger's own resubmission rules apply.
    result = await submit.submit(
        conn,
        spec,
        sources,
        now=now,
        default_max_attempts=default_max_attempts,
        skip_unchanged=skip_unchanged,
    )
    if result.created:
        await conn.execute(
            insert(batch_requests).values(
                batch_id=result.batch.id, fingerprint=fingerprint, created_at=now
            )
        )
    return result
