"""What ``ledger status`` and ``GET /batches/{id}`` read of one batch, as plain SQL text.

One definition, two ways to run it: the ledger runs these statements through SQLAlchemy
(``text()`` on its connection, SQLite or PostgreSQL, ``ledger.queue.progress``), and a
short-lived command reads a SQLite file with Python's own ``sqlite3`` driver
(``ledger.db.sqlite_reads``) without importing SQLAlchemy at all, which is most of its
start-up. The statements use named ``:params``, which both accept; a :class:`Rows` runs
them. Values come back as each driver gives them (timestamps as text on SQLite, JSON as
text on SQLite), so the decoding below accepts both forms: both paths build the same
records from the same rows.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from msgspec.structs import replace

from ledger.errors import NotFound
from ledger.model import Batch, FailureGroup, Progress, SinkProgress, totals
from ledger.states import BatchState, DocumentStatus

RATE_WINDOW = timedelta(seconds=60)
RATE_SAMPLE = 1_000  # at most this many recent finishes are looked at, however big the batch
LIVE_WORKERS_READ = 10_000  # bound on the live workers read to answer a routing question

_COUNTERS = ", ".join(f"n_{s.value}" for s in DocumentStatus)
_CANCELLED = DocumentStatus.CANCELLED.value

# A half-deleted batch (deleting_at set, ledger.queue.deletion) is not shown at all.
BATCH = (
    "SELECT id, name, owner, state, pause_reason, priority, processor, options, "
    f"max_attempts, {_COUNTERS}, created_at, updated_at, started_at, completed_at "
    "FROM batches WHERE id = :batch_id AND deleting_at IS NULL"
)
OWNED_BY = " AND owner = :owner"

# Documents skipped at submit (no attempt) were not processed: they say nothing of the pace.
RECENT_FINISHES = (
    "SELECT count(*) AS n, min(finished_at) AS oldest, max(finished_at) AS newest FROM ("
    "SELECT finished_at FROM documents WHERE batch_id = :batch_id AND finished_at >= :since "
    f"AND status != '{_CANCELLED}' AND attempts > 0 "
    "ORDER BY finished_at DESC LIMIT :sample) AS recent"
)
LAST_FINISH = "SELECT max(finished_at) AS last FROM documents WHERE batch_id = :batch_id"
PROCESSED = (
    "SELECT count(*) AS n FROM documents WHERE batch_id = :batch_id "
    f"AND status != '{_CANCELLED}' AND attempts > 0 AND finished_at IS NOT NULL"
)
FAILURE_GROUPS = (
    "SELECT error_code, count(*) AS n, max(error_message) AS example FROM documents "
    f"WHERE batch_id = :batch_id AND status = '{DocumentStatus.FAILED.value}' "
    "GROUP BY error_code ORDER BY count(*) DESC, error_code"
)
# The same facts as ledger.queue.workers.state_of's 'alive', so the heartbeat index serves it.
LIVE_PROCESSORS = (
    "SELECT processors FROM workers "
    "WHERE stopped_at IS NULL AND heartbeat_at >= :cutoff LIMIT :limit"
)
# Removals (no document) are not counted: their batch is gone or the version is another's.
SINK_COUNTS = (
    "SELECT batch_id, sink, status, count(*) AS n, max(id) AS last_id FROM sink_rows "
    "WHERE batch_id IN ({batch_ids}) AND document_id IS NOT NULL "
    "GROUP BY batch_id, sink, status"
)
SINK_ERRORS = "SELECT batch_id, sink, last_error FROM sink_rows WHERE id IN ({ids})"


class Rows(Protocol):
    """Runs one of the statements above in the caller's read transaction."""

    async def rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]: ...


def expand(sql: str, name: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``sql`` with its ``{name}`` placeholder made a list of named parameters, one per
    value (both drivers take ``:name_0, :name_1``; neither expands a list by itself)."""
    params = {f"{name}_{i}": value for i, value in enumerate(values)}
    return sql.format(**{name: ", ".join(f":{key}" for key in params)}), params


def aware(value: Any) -> datetime | None:
    """A timestamp as a driver returns it (a datetime, or SQLite's UTC text), made aware."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _required(value: Any) -> datetime:
    moment = aware(value)
    if moment is None:
        raise ValueError("a timestamp column the schema holds NOT NULL was NULL")
    return moment


def _json(value: Any) -> Any:
    # JSON columns are text on SQLite; PostgreSQL's driver decodes JSONB itself.
    return json.loads(value) if isinstance(value, str | bytes) else value


def batch_from_mapping(m: Mapping[Any, Any]) -> Batch:
    """A batch record from a row of ``batches``, typed by SQLAlchemy or as a driver gives it."""
    state = BatchState(m["state"])
    counts = {s: int(m[f"n_{s.value}"]) for s in DocumentStatus}
    status, total, finished, complete = totals(state, counts)
    return Batch(
        id=m["id"],
        name=m["name"],
        owner=m["owner"],
        state=state,
        status=status,
        pause_reason=m["pause_reason"],
        priority=m["priority"],
        processor=m["processor"],
        options=dict(_json(m["options"]) or {}),
        max_attempts=m["max_attempts"],
        counts=counts,
        total=total,
        finished=finished,
        complete=complete,
        created_at=_required(m["created_at"]),
        updated_at=_required(m["updated_at"]),
        started_at=aware(m["started_at"]),
        completed_at=aware(m["completed_at"]),
    )


async def get_batch(db: Rows, batch_id: str, *, owner: str | None) -> Batch:
    sql, params = BATCH, {"batch_id": batch_id}
    if owner is not None:
        sql, params = sql + OWNED_BY, {**params, "owner": owner}
    found = await db.rows(sql, params)
    if not found:
        raise NotFound(f"no batch {batch_id!r}")
    return batch_from_mapping(found[0])


async def recent_rate(
    db: Rows, batch: Batch, now: datetime
) -> tuple[float | None, datetime | None]:
    """Documents finished per second recently, and the time of the last finish.

    Looks at the last minute, or at the last RATE_SAMPLE finishes if that is shorter, so
    the cost stays bounded however fast the batch runs or however large it is.
    """
    since = now - RATE_WINDOW
    (found,) = await db.rows(
        RECENT_FINISHES, {"batch_id": batch.id, "since": since, "sample": RATE_SAMPLE}
    )
    count, oldest, last = int(found["n"]), aware(found["oldest"]), aware(found["newest"])
    if last is None:
        (latest,) = await db.rows(LAST_FINISH, {"batch_id": batch.id})
        last = aware(latest["last"])
    if not count:
        return (0.0 if batch.started_at else None), last
    if count >= RATE_SAMPLE and oldest is not None:
        span = (now - oldest).total_seconds()
    else:
        start = max(since, batch.started_at or since)
        span = (now - start).total_seconds()
    return (count / span if span > 0 else None), last


async def average_rate(db: Rows, batch: Batch) -> float | None:
    """Documents processed per second from the first claim to completion."""
    assert batch.started_at is not None and batch.completed_at is not None
    span = (batch.completed_at - batch.started_at).total_seconds()
    (found,) = await db.rows(PROCESSED, {"batch_id": batch.id})
    return int(found["n"]) / span if span > 0 else None


async def progress(db: Rows, batch_id: str, *, owner: str | None, now: datetime) -> Progress:
    """Counts per status (exact, from the counters), recent rate and ETA for one batch."""
    batch = await get_batch(db, batch_id, owner=owner)
    rate, last = await recent_rate(db, batch, now)
    if batch.completed_at is not None and batch.started_at is not None:
        # Finished: the recent rate only decays towards 0; the run's average says more.
        rate = await average_rate(db, batch)
    left = batch.counts[DocumentStatus.PENDING] + batch.counts[DocumentStatus.RUNNING]
    eta = None
    if left == 0:
        eta = 0.0
    elif rate and batch.state == BatchState.ACTIVE:
        eta = left / rate
    return Progress(batch=batch, rate=rate, eta_seconds=eta, last_finished_at=last)


async def failures(db: Rows, batch_id: str, *, owner: str | None) -> list[FailureGroup]:
    """The batch's failed documents grouped by error code, largest group first."""
    await get_batch(db, batch_id, owner=owner)
    found = await db.rows(FAILURE_GROUPS, {"batch_id": batch_id})
    return [
        FailureGroup(code=r["error_code"], count=int(r["n"]), example_message=r["example"])
        for r in found
    ]


async def live_capabilities(db: Rows, *, now: datetime, lease_seconds: float) -> Counter[str]:
    """For each processor name, how many live workers can run it."""
    cutoff = now - timedelta(seconds=lease_seconds)
    found = await db.rows(LIVE_PROCESSORS, {"cutoff": cutoff, "limit": LIVE_WORKERS_READ})
    able: Counter[str] = Counter()
    for r in found:
        able.update(set(_json(r["processors"]) or []))
    return able


async def waiting_for_processor(
    db: Rows, batch: Batch, *, now: datetime, lease_seconds: float
) -> str | None:
    """The processor a batch waits for when it has due work and no live worker can run it
    (None when someone can, or nothing is left to do)."""
    if batch.state != BatchState.ACTIVE or not batch.counts[DocumentStatus.PENDING]:
        return None
    able = await live_capabilities(db, now=now, lease_seconds=lease_seconds)
    return None if able[batch.processor] else batch.processor


async def sink_progress(db: Rows, batch_ids: Sequence[str]) -> dict[str, dict[str, SinkProgress]]:
    """Per batch, per sink: how many of its documents' versions are pending, done and
    failed in the store, and the latest error."""
    if not batch_ids:
        return {}
    counts: dict[tuple[str, str], dict[str, int]] = {}
    failed_ids = []
    for r in await db.rows(*expand(SINK_COUNTS, "batch_ids", batch_ids)):
        counts.setdefault((r["batch_id"], r["sink"]), {})[r["status"]] = int(r["n"])
        if r["status"] == "failed":
            failed_ids.append(r["last_id"])
    errors: dict[tuple[str, str], str] = {}
    if failed_ids:
        found = await db.rows(*expand(SINK_ERRORS, "ids", failed_ids))
        errors = {(r["batch_id"], r["sink"]): r["last_error"] for r in found}
    result: dict[str, dict[str, SinkProgress]] = {}
    for (batch_id, sink), by_status in sorted(counts.items()):
        result.setdefault(batch_id, {})[sink] = SinkProgress(
            pending=by_status.get("pending", 0),
            done=by_status.get("done", 0),
            failed=by_status.get("failed", 0),
            last_error=errors.get((batch_id, sink)),
        )
    return result


async def progress_of(
    db: Rows, batch_id: str, *, owner: str | None, now: datetime, lease_seconds: float
) -> Progress:
    """The batch's progress with what it waits for and how far its sinks are."""
    found = await progress(db, batch_id, owner=owner, now=now)
    waiting = await waiting_for_processor(db, found.batch, now=now, lease_seconds=lease_seconds)
    sinks = (await sink_progress(db, [batch_id])).get(batch_id, {})
    return replace(found, waiting_for_processor=waiting, sinks=sinks)
