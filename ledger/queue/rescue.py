"""Rescue of orphaned work: attempts whose worker stopped renewing its lease.

Runs inside a claim's write transaction (a bounded number at a time) and on demand; the
documents it ends are due again at once, so the claim that rescued them may take them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import batches, documents
from ledger.db.prepared import inline, prepared, time_param
from ledger.index import staged_chunks
from ledger.queue.endings import Ending, mark_completed, write_endings
from ledger.states import AttemptOutcome, BatchState, DocumentStatus, ErrorCode


async def rescue_expired(conn: AsyncConnection, *, now: datetime, limit: int) -> int:
    """End the attempts whose worker stopped renewing its lease (crash, kill -9, hang).

    Each such attempt is recorded as ``lease_expired``. The document goes back to pending,
    due at once, or to failed when that was its last allowed attempt, or to cancelled when
    its batch was cancelled. At most ``limit`` leases per call keep the transaction short.
    """
    query = prepared(
        conn,
        ("expired",),
        lambda: backend_of(conn).lock_rows(
            select(
                documents.c.id,
                documents.c.batch_id,
                documents.c.attempts,
                documents.c.lease_owner,
                batches.c.max_attempts,
                batches.c.state,
            )
            .join(batches, batches.c.id == documents.c.batch_id)
            .where(
                documents.c.status == inline(DocumentStatus.RUNNING.value),
                documents.c.lease_expires_at < time_param("p_now"),
            )
            .order_by(documents.c.lease_expires_at)
            .limit(bindparam("p_limit", type_=Integer())),
            of=documents,
            skip_locked=True,
        ),
    )
    rows = (await conn.execute(query, {"p_now": now, "p_limit": limit})).all()
    if not rows:
        return 0
    endings = []
    for r in rows:
        base = (
            f"worker {r.lease_owner} stopped renewing its lease during attempt "
            f"{r.attempts} of {r.max_attempts} (crashed, killed or hung)"
        )
        if r.state == BatchState.CANCELLED.value:
            status, message = DocumentStatus.CANCELLED, base
        elif r.attempts >= r.max_attempts:
            status, message = DocumentStatus.FAILED, base + "; no attempts left"
        else:
            status, message = DocumentStatus.PENDING, base + "; will retry"
        endings.append(
            Ending(
                doc_id=r.id,
                batch_id=r.batch_id,
                status=status,
                outcome=AttemptOutcome.LEASE_EXPIRED,
                next_attempt_at=now,  # due at once: the claim that rescued it may take it
                error_code=ErrorCode.LEASE_EXPIRED.value,
                error_message=message,
            )
        )
    await write_endings(conn, endings, now, worker_id=None)
    # What the ended attempts staged can never be attached now (the finish takes only the
    # holding token's rows): dropped with the attempt.
    await staged_chunks.clear(conn, [e.doc_id for e in endings])
    await mark_completed(conn, (e.batch_id for e in endings), now)
    return len(endings)
