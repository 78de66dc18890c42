"""Turning table rows into the records callers see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from ledger.db.models import COUNTED_STATUSES, batches
from ledger.model import AttemptInfo, Batch, DocumentInfo, Event, totals
from ledger.states import AttemptOutcome, BatchState, DocumentStatus

BATCH_COLUMNS = tuple(batches.c)


def batch_from_row(row: Row[Any]) -> Batch:
    m = row._mapping
    state = BatchState(m["state"])
    counts = {s: int(m[f"n_{s.value}"]) for s in COUNTED_STATUSES}
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
        options=dict(m["options"] or {}),
        max_attempts=m["max_attempts"],
        counts=counts,
        total=total,
        finished=finished,
        complete=complete,
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
    )


def document_from_row(row: Row[Any]) -> DocumentInfo:
    m = row._mapping
    return DocumentInfo(
        id=m["id"],
        batch_id=m["batch_id"],
        source=m["source"],
        status=DocumentStatus(m["status"]),
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        error_code=m["error_code"],
        error_message=m["error_message"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        result=m["result"],
        meta=m["meta"],
        size=m["source_size"],
        sha256=m["source_sha256"],
        created_at=m["created_at"],
        parent_id=m.get("parent_id"),
        member_path=m.get("member_path"),
    )


def attempt_from_row(row: Row[Any]) -> AttemptInfo:
    m = row._mapping
    return AttemptInfo(
        id=m["id"],
        document_id=m["document_id"],
        attempt=m["attempt"],
        worker_id=m["worker_id"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        duration_seconds=m["duration_seconds"],
        outcome=AttemptOutcome(m["outcome"]),
        error_code=m["error_code"],
        error_message=m["error_message"],
    )


def event_from_row(row: Row[Any]) -> Event:
    m = row._mapping
    return Event(
        id=m["id"],
        batch_id=m["batch_id"],
        document_id=m["document_id"],
        kind=m["kind"],
        data=m["data"],
        created_at=m["created_at"],
        document_source=m.get("document_source"),
    )
