"""The circuit breaker: pause a batch whose recent attempts fail alike (an outage).

A batch of bad documents fails one by one; a batch whose service is down fails all at once
with one systemic error code. Only the second pauses the batch, for a person to resume.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import attempts, batches
from ledger.queue.events import record_events
from ledger.states import AttemptOutcome, BatchState
from ledger.wording import plural


@dataclass(frozen=True)
class BreakerPolicy:
    """Pause a batch when most recent attempts fail alike: an outage, not bad documents."""

    window: int = 20
    threshold: float = 0.8


async def check_breaker(
    conn: AsyncConnection, batch_id: str, policy: BreakerPolicy, now: datetime
) -> str | None:
    """Pause the batch if most of its recent attempts failed with one systemic error code.

    Returns the pause reason when it tripped. Only attempts after the last resume count, so
    resuming gives the batch a fresh window.
    """
    batch = (
        await conn.execute(
            select(batches.c.state, batches.c.breaker_after_attempt).where(batches.c.id == batch_id)
        )
    ).first()
    if batch is None or batch.state != BatchState.ACTIVE.value:
        return None
    recent = (
        await conn.execute(
            select(attempts.c.error_code, attempts.c.systemic, attempts.c.error_message)
            .where(
                attempts.c.batch_id == batch_id,
                attempts.c.id > batch.breaker_after_attempt,
                # A rate limit is the service pacing us, not failing: it neither trips the
                # breaker nor dilutes the window of real outcomes.
                attempts.c.outcome != AttemptOutcome.THROTTLED.value,
            )
            .order_by(attempts.c.id.desc())
            .limit(policy.window)
        )
    ).all()
    if len(recent) < policy.window:
        return None
    codes = Counter(r.error_code for r in recent if r.systemic and r.error_code)
    if not codes:
        return None
    code, count = codes.most_common(1)[0]
    if count < policy.threshold * policy.window:
        return None
    example = next(r.error_message for r in recent if r.error_code == code)
    reason = (
        f"circuit breaker: {count} of the last {plural(len(recent), 'attempt')} failed with {code}"
        f" ({(example or '')[:300]}); resume the batch when the cause is fixed"
    )
    await conn.execute(
        update(batches)
        .where(and_(batches.c.id == batch_id, batches.c.state == BatchState.ACTIVE.value))
        .values(state=BatchState.PAUSED.value, pause_reason=reason, updated_at=now)
    )
    await record_events(
        conn, now, [(batch_id, None, "batch_paused", {"reason": reason, "breaker": True})]
    )
    return reason
