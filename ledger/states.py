"""States of batches and documents, and the transitions between them.

This module is the domain vocabulary of the ledger. It imports nothing of the project and
no I/O library: the database migrations enforce exactly these sets (CHECK constraints and a
transition trigger), and a test proves the two agree.
"""

from __future__ import annotations

from enum import StrEnum


class BatchState(StrEnum):
    """What a batch allows. Completion is not a state: it is derived from the counts."""

    ACTIVE = "active"  # documents are claimed
    PAUSED = "paused"  # nothing is claimed; running documents finish
    CANCELLED = "cancelled"  # pending documents were cancelled; final


class BatchStatus(StrEnum):
    """Where a batch stands as people see it: its state, with completion derived from counts."""

    PENDING = "pending"  # active, nothing running right now
    RUNNING = "running"  # active, documents being processed
    PAUSED = "paused"
    COMPLETE = "complete"  # has documents and every one is finished (not cancelled)
    CANCELLED = "cancelled"


class BatchFilter(StrEnum):
    """What a list of batches can be narrowed to: any status, or ``active`` for both of the
    statuses that still get work done (pending or running; not paused, complete or cancelled)."""

    ACTIVE = "active"
    PENDING = BatchStatus.PENDING.value
    RUNNING = BatchStatus.RUNNING.value
    PAUSED = BatchStatus.PAUSED.value
    COMPLETE = BatchStatus.COMPLETE.value
    CANCELLED = BatchStatus.CANCELLED.value

    def as_query(self) -> tuple[BatchState | None, BatchStatus | None]:
        """The (state, status) arguments of the core's batch listing that mean this filter."""
        if self is BatchFilter.ACTIVE:
            return BatchState.ACTIVE, None
        return None, BatchStatus(self.value)


class DocumentStatus(StrEnum):
    """Where one document is in its life."""

    PENDING = "pending"  # waiting to be claimed (possibly not before next_attempt_at)
    RUNNING = "running"  # leased to a worker until lease_expires_at
    DONE = "done"  # processed; its result (and chunks) are stored
    FAILED = "failed"  # permanent error or attempts exhausted; error_code says why
    SKIPPED = "skipped"  # nothing to do (for example an unchanged duplicate)
    CANCELLED = "cancelled"  # its batch was cancelled before it ran


TERMINAL_STATUSES: frozenset[DocumentStatus] = frozenset(
    {DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.SKIPPED, DocumentStatus.CANCELLED}
)

# Every allowed change of a document's status. Staying in the same status is always allowed
# (a running document whose lease expired is taken over by another worker: running -> running).
DOCUMENT_TRANSITIONS: frozenset[tuple[DocumentStatus, DocumentStatus]] = frozenset(
    {
        (DocumentStatus.PENDING, DocumentStatus.RUNNING),  # claim
        (DocumentStatus.PENDING, DocumentStatus.CANCELLED),  # batch cancelled
        (DocumentStatus.PENDING, DocumentStatus.SKIPPED),  # dedup decided before running
        (DocumentStatus.RUNNING, DocumentStatus.DONE),  # finish
        (DocumentStatus.RUNNING, DocumentStatus.FAILED),  # permanent error, attempts exhausted
        (DocumentStatus.RUNNING, DocumentStatus.PENDING),  # retry later, release, lease rescue
        (DocumentStatus.RUNNING, DocumentStatus.SKIPPED),  # processor found nothing to do
        (DocumentStatus.RUNNING, DocumentStatus.CANCELLED),  # batch cancelled, released
        (DocumentStatus.FAILED, DocumentStatus.PENDING),  # retry_failed
        (DocumentStatus.DONE, DocumentStatus.PENDING),  # source changed: process again
        (DocumentStatus.SKIPPED, DocumentStatus.PENDING),  # source changed: process again
    }
)


def transition_allowed(old: DocumentStatus, new: DocumentStatus) -> bool:
    """True when a document may go from ``old`` to ``new``."""
    return old == new or (old, new) in DOCUMENT_TRANSITIONS


class AttemptOutcome(StrEnum):
    """How one attempt at a document ended (the ``attempts`` audit trail)."""

    DONE = "done"
    SKIPPED = "skipped"
    RETRY = "retry"  # retryable error; the document went back to pending with backoff
    FAILED = "failed"  # permanent error or the last allowed attempt
    LEASE_EXPIRED = "lease_expired"  # the worker vanished (crash, kill -9, hang)
    RELEASED = "released"  # graceful shutdown gave the document back unfinished
    CANCELLED = "cancelled"  # the batch was cancelled while it ran
    # The remote side asked us to slow down (HTTP 429): back to pending at now + the wait
    # it asked for, and the attempt is not charged against max_attempts.
    THROTTLED = "throttled"


class ErrorCode(StrEnum):
    """Stable error codes the ledger itself records. Processors add their own codes."""

    LEASE_EXPIRED = "lease_expired"  # last attempt's worker died; attempts exhausted
    EXCEPTION = "exception"  # an unexpected exception in a processor (type in the message)
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    WORKER_CRASHED = "worker_crashed"  # the process running the document died
    # A processor raised SystemExit, KeyboardInterrupt or another BaseException: permanent.
    PROCESSOR_EXIT = "processor_exit"
    SOURCE_MISSING = "source_missing"
    # A stored upload cannot be read on this worker: the shared storage is not mounted here.
    STORAGE_UNREACHABLE = "storage_unreachable"
    SOURCE_CHANGED = "source_changed"
    # Throttled more than LEDGER_THROTTLE_LIMIT times in a row: each further throttle is
    # charged an attempt like any retryable failure, and the last one fails the document.
    RATE_LIMITED = "rate_limited"


class UploadState(StrEnum):
    """Where one resumable (tus) upload is in its life."""

    RECEIVING = "receiving"  # bytes are appended; the offset is what is durably on disk
    COMPLETE = "complete"  # every byte arrived; its document exists; final
    TERMINATED = "terminated"  # the client deleted it; its file is removed; final
    EXPIRED = "expired"  # unfinished past its expiry; its file is removed; final


class WorkerState(StrEnum):
    """A worker process as every face shows it, derived when read (queue/workers.py)."""

    ALIVE = "alive"
    LOST = "lost"
    STOPPED = "stopped"
