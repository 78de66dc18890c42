"""Turning table rows into the records callers see."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from ledger.db.models import batches
from ledger.model import AttemptInfo, Batch, DocumentInfo, Event
from ledger.queue.status_reads import batch_from_mapping
from ledger.states import AttemptOutcome, DocumentStatus

BATCH_COLUMNS = tuple(batches.c)


def batch_from_row(row: Row[Any]) -> Batch:
    return batch_from_mapping(row._mapping)


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
