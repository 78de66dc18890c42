"""How the command line shows things: JSON for scripts, short human text for people.

JSON keys are a contract for scripts: add keys, never rename or remove them. Timestamps are
ISO 8601 in UTC; durations are seconds; absent values are ``null``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger.states import BatchState, BatchStatus, DocumentStatus

if TYPE_CHECKING:
    from ledger.model import AttemptInfo, Batch, DocumentInfo, FailureGroup, Progress

STATUS_STYLE: Mapping[DocumentStatus, str] = {
    DocumentStatus.PENDING: "dim",
    DocumentStatus.RUNNING: "cyan",
    DocumentStatus.DONE: "green",
    DocumentStatus.FAILED: "red",
    DocumentStatus.SKIPPED: "yellow",
    DocumentStatus.CANCELLED: "magenta",
}

STATE_STYLE: Mapping[BatchState, str] = {
    BatchState.ACTIVE: "green",
    BatchState.PAUSED: "yellow",
    BatchState.CANCELLED: "magenta",
}


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def emit_json(value: Any) -> None:
    """Write one JSON document to stdout, always valid UTF-8."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a row holding bytes that are not UTF-8: escape them
        text = json.dumps(value, indent=2, ensure_ascii=True)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 04s``, ``12.3s``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def rate(per_second: float | None) -> str:
    if per_second is None:
        return "-"
    if per_second >= 10:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.2f}/s" if per_second >= 0.1 else f"{per_second * 60:.1f}/min"


def when(value: datetime | None) -> str:
    """A timestamp in local time, to the second, for people."""
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def status_word(batch: Batch) -> BatchStatus:
    """One word for where a batch stands (``ledger batches --state`` filters on it)."""
    return batch.status


def counts_json(batch: Batch) -> dict[str, int]:
    return {s.value: int(batch.counts.get(s, 0)) for s in DocumentStatus}


def batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "id": batch.id,
        "name": batch.name,
        "state": batch.state.value,
        "status": status_word(batch),
        "pause_reason": batch.pause_reason,
        "processor": batch.processor,
        "options": batch.options,
        "priority": batch.priority,
        "max_attempts": batch.max_attempts,
        "counts": counts_json(batch),
        "total": batch.total,
        "finished": batch.finished,
        "complete": batch.complete,
        "created_at": iso(batch.created_at),
        "updated_at": iso(batch.updated_at),
        "started_at": iso(batch.started_at),
        "completed_at": iso(batch.completed_at),
    }


def progress_json(progress: Progress) -> dict[str, Any]:
    out = batch_json(progress.batch)
    out.update(
        {
            "percent": round(progress.percent, 2),
            "rate_per_second": progress.rate,
            "eta_seconds": progress.eta_seconds,
            "last_finished_at": iso(progress.last_finished_at),
            "waiting_for_processor": progress.waiting_for_processor,
            "sinks": {
                name: {
                    "pending": s.pending,
                    "done": s.done,
                    "failed": s.failed,
                    "last_error": s.last_error,
                }
                for name, s in progress.sinks.items()
            },
        }
    )
    return out


def document_name(doc: DocumentInfo) -> str:
    """How a document is named to a person: its source, or for a member of an archive or
    email its parent's source, ``!/`` and its path there (its own file is the ledger's)."""
    if doc.parent_id is None:
        return doc.source
    from ledger.index.citations import source_name  # not at the top: the core stays lazy

    return source_name(doc.source, doc.meta)


def document_json(doc: DocumentInfo) -> dict[str, Any]:
    return {
        "id": doc.id,
        "batch_id": doc.batch_id,
        "source": doc.source,
        "parent_id": doc.parent_id,
        "member_path": doc.member_path,
        "status": doc.status.value,
        "attempts": doc.attempts,
        "error_code": doc.error_code,
        "error_message": doc.error_message,
        "size": doc.size,
        "started_at": iso(doc.started_at),
        "finished_at": iso(doc.finished_at),
        "created_at": iso(doc.created_at),
    }


def attempt_json(attempt: AttemptInfo) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "worker_id": attempt.worker_id,
        "outcome": attempt.outcome.value,
        "error_code": attempt.error_code,
        "error_message": attempt.error_message,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "duration_seconds": attempt.duration_seconds,
    }


def failure_group_json(group: FailureGroup, documents: list[DocumentInfo]) -> dict[str, Any]:
    return {
        "code": group.code,
        "count": group.count,
        "documents": [document_json(d) for d in documents],
    }


def first_line(text: str | None, limit: int = 200) -> str:
    """The first line of an error message, shortened for a table cell."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
