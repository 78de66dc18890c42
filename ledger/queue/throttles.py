"""How the finish transaction ends a throttled attempt (see ``ledger/backpressure.py``).

A throttled attempt is recorded like any other (an ``attempts`` row, outcome ``throttled``,
the error code the stage gave, fenced by the lease) but the document goes back to pending
at now + the wait the remote side asked for, and ``documents.attempts`` gives the attempt
back: that column counts the attempts charged against ``max_attempts``, while the
``attempts`` rows (numbered 1, 2, 3... across everything) keep the whole history.

The guard against a service that throttles for ever is read from that history: the run of
throttles at the end of the document's attempt rows. Once it reaches
``LEDGER_THROTTLE_LIMIT``, each further throttle is charged as a retryable failure with
code ``rate_limited`` (systemic: a service that answers nothing but 429 is down for us, and
the circuit breaker may pause the batch), so the document fails after its remaining
attempts. The run goes on until an attempt ends otherwise, so a charged throttle does not
open a fresh allowance.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.db.backends import backend_of
from ledger.db.models import attempts
from ledger.db.prepared import prepared
from ledger.states import AttemptOutcome, ErrorCode

# Retry-After is honoured exactly as a floor; documents throttled together are spread over
# up to this fraction more, so they do not all come back in the same instant.
SPREAD = 0.2


def _throttle_row(table: FromClause) -> ColumnElement[bool]:
    """The attempt row ``table`` is a throttle (free, or charged past the limit)."""
    return or_(
        table.c.outcome == AttemptOutcome.THROTTLED.value,
        func.coalesce(table.c.error_code, "") == ErrorCode.RATE_LIMITED.value,
    )


def _runs_query(conn: AsyncConnection) -> Any:
    later = attempts.alias("later")
    last_other = (
        select(func.coalesce(func.max(attempts.c.id), 0))
        .where(attempts.c.document_id == later.c.document_id, not_(_throttle_row(attempts)))
        .scalar_subquery()
    )
    return (
        select(later.c.document_id, func.count().label("run"))
        .where(
            and_(
                backend_of(conn).one_of(later.c.document_id),
                _throttle_row(later),
                later.c.id > last_other,
            )
        )
        .group_by(later.c.document_id)
    )


async def throttle_runs(conn: AsyncConnection, document_ids: Sequence[int]) -> dict[int, int]:
    """For each document, how many of its last attempts in a row were throttled (0 when
    none: absent from the answer)."""
    if not document_ids:
        return {}
    statement = prepared(conn, ("throttle_runs",), lambda: _runs_query(conn))
    rows = (await conn.execute(statement, {"p_ids": list(document_ids)})).all()
    return {int(r.document_id): int(r.run) for r in rows}


def throttle_delay(
    run: int, retry_after: float | None, retry: RetryPolicy, rng: random.Random
) -> float:
    """Seconds until a document throttled ``run`` times in a row before this one is due:
    what the remote side asked for (spread a little later), else the ledger's backoff,
    growing with the run."""
    if retry_after is not None:
        return retry_after * (1.0 + SPREAD * rng.random())
    return retry.delay(run + 1, rng=rng)


def past_limit_message(message: str, run: int, limit: int) -> str:
    """The recorded message of a throttle charged as a failure."""
    return (
        f"{message} (throttled {run + 1} times in a row, more than LEDGER_THROTTLE_LIMIT="
        f"{limit}: charged as a failed attempt)"
    )


__all__ = ["past_limit_message", "throttle_delay", "throttle_runs"]
