"""Throughput over time: a batch's attempts grouped by the minute they ended (for charts)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.backends import backend_of
from ledger.db.models import attempts
from ledger.model import Throughput, ThroughputMinute
from ledger.queue.progress import get_batch
from ledger.states import AttemptOutcome, BatchState

MINUTE = timedelta(minutes=1)
SAMPLE = 100_000  # at most this many of the batch's latest attempts are read

_FIELD = {
    AttemptOutcome.DONE: "done",
    AttemptOutcome.FAILED: "failed",
    AttemptOutcome.SKIPPED: "skipped",
}


def _floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


async def throughput(
    conn: AsyncConnection,
    batch_id: str,
    *,
    owner: str | None,
    now: datetime,
    minutes: int,
    sample: int = SAMPLE,
) -> Throughput:
    """Attempts per minute over ``minutes`` minutes, oldest first, every minute present.

    The window ends now while the batch has work left and is active, otherwise at the
    minute of its last attempt, so a batch that finished yesterday still shows its run.
    Only the batch's latest ``sample`` attempts are read (newest ids first, through the
    ``(batch_id, id)`` index): the cost is bounded, and ``truncated`` says when the window
    held more than that.
    """
    batch = await get_batch(conn, batch_id, owner=owner)
    recent = (
        select(attempts.c.finished_at, attempts.c.outcome)
        .where(attempts.c.batch_id == batch.id)
        .order_by(attempts.c.id.desc())
        .limit(sample)
        .subquery()
    )
    minute = backend_of(conn).minute_of(recent.c.finished_at).label("minute")
    rows = (
        await conn.execute(
            select(minute, recent.c.outcome, func.count().label("n")).group_by(
                minute, recent.c.outcome
            )
        )
    ).all()
    counts: dict[datetime, Counter[str]] = {}
    read = 0
    for row in rows:
        start = datetime.strptime(row.minute, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        outcome = AttemptOutcome(row.outcome)
        counts.setdefault(start, Counter())[_FIELD.get(outcome, "retried")] += int(row.n)
        read += int(row.n)

    running = batch.state == BatchState.ACTIVE and not batch.complete
    until = _floor(now) if running or not counts else max(counts)
    first = until - (minutes - 1) * MINUTE
    series = []
    for i in range(minutes):
        start = first + i * MINUTE
        c = counts.get(start, Counter())
        series.append(
            ThroughputMinute.counted(
                start,
                done=c["done"],
                failed=c["failed"],
                skipped=c["skipped"],
                retried=c["retried"],
            )
        )
    truncated = read >= sample and bool(counts) and min(counts) >= first
    return Throughput(batch_id=batch.id, until=until, minutes=series, truncated=truncated)
