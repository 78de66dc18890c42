"""The events a webhook can hear, their ids and their bodies. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ledger.model import Batch
from ledger.states import DocumentStatus


class EventType(StrEnum):
    COMPLETED = "batch.completed"  # nothing left to do (not for cancelled batches)
    PAUSED = "batch.paused"  # by request or by the circuit breaker; with the reason
    FAILURES = "batch.failures"  # failed share of finished documents above the threshold
    STALLED = "batch.stalled"  # due documents, but none finished for a while
    TEST = "webhook.test"  # sent on request (`ledger webhooks test`)


SUBSCRIBABLE: tuple[EventType, ...] = (
    EventType.COMPLETED,
    EventType.PAUSED,
    EventType.FAILURES,
    EventType.STALLED,
)


def occurrence(moment: datetime) -> str:
    """One spelling of a moment, the same whichever backend stored it."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def event_id(webhook_id: str, event_type: str, subject: str, happened: str) -> str:
    """The message id of an event: derived from what happened, never random, so finding the
    same fact again (after a crash, in a second scan) gives the same id."""
    key = "\x1f".join((webhook_id, event_type, subject, happened))
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def body(event_type: str, occurred_at: datetime, data: dict[str, Any]) -> str:
    """The JSON body, in the Standard Webhooks shape {type, timestamp, data}. Made once and
    stored, so every attempt sends the same bytes."""
    payload = {"type": event_type, "timestamp": occurrence(occurred_at), "data": data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def batch_data(batch: Batch) -> dict[str, Any]:
    """What every batch event says about its batch."""
    return {
        "batch_id": batch.id,
        "name": batch.name,
        "status": batch.status.value,
        "total": batch.total,
        "counts": {status.value: batch.counts[status] for status in DocumentStatus},
        "created_at": occurrence(batch.created_at),
        "completed_at": occurrence(batch.completed_at) if batch.completed_at else None,
    }


def failed_share(batch: Batch) -> float:
    """Failed documents as a share of the documents that ran to an end (done, failed or
    skipped; cancelled ones never ran)."""
    counts = batch.counts
    ended = counts[DocumentStatus.DONE] + counts[DocumentStatus.FAILED]
    ended += counts[DocumentStatus.SKIPPED]
    return counts[DocumentStatus.FAILED] / ended if ended else 0.0
