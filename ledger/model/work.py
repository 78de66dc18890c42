"""What a worker holds and hands back: a claimed document, and how its attempt ended.

Plain values with no I/O; what an outcome records in the index is data (ledger.artifacts),
and the callbacks it may carry (file cleanups) run in the worker, never in a transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec
from msgspec import Struct

from ledger.artifacts import ChunkRow, DocumentFacts, IndexArtifacts
from ledger.model.batch import JSON
from ledger.states import AttemptOutcome, DocumentStatus

# Run by the worker once an outcome is recorded, or dropped (its lease was lost): removes
# what only the finish needed (a chunk spool file, say). Must not raise.
Cleanup = Callable[[], None]


class ClaimedDocument(Struct, frozen=True):
    """A document leased to a worker. ``lease_token`` fences everything the worker writes."""

    id: int
    batch_id: str
    source: str
    attempt: int
    max_attempts: int
    lease_token: str
    lease_expires_at: datetime
    started_at: datetime
    processor: str
    options: JSON
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    meta: JSON | None
    # What the ledger knows about its source and content (dedup), read by the worker for
    # its whole claimed group before the processor runs; None: not looked up.
    facts: DocumentFacts | None = None


class ErrorInfo(Struct, frozen=True):
    code: str
    message: str
    retryable: bool
    systemic: bool = False
    retry_after: float | None = None
    # The remote side asked us to slow down (ledger.backpressure.Throttled): rescheduled
    # after ``retry_after`` without charging an attempt, up to LEDGER_THROTTLE_LIMIT in a row.
    throttled: bool = False


class ChildFile(Struct, frozen=True):
    """A member of a document (an archive's file, an email's attachment), extracted to
    ``source`` before the parent's outcome is recorded. The transaction that marks the
    parent done makes it a document of the parent's batch, replacing the parent's earlier
    children: data, not a callback, so every child is created there or none is."""

    member_path: str  # its path inside the parent, as the parent names it
    source: str  # the extracted file (inside the storage folder), or its object in the store
    size: int
    sha256: str
    meta: JSON  # how it is cited: the parent's source and meta, the member path, the depth
    # An object's last-modified time (its ETag is in ``meta``), checked like a submit's.
    mtime_ns: int | None = None


class Outcome(Struct, frozen=True):
    """How a worker's attempt at one document ended."""

    document_id: int
    lease_token: str
    outcome: AttemptOutcome  # DONE, SKIPPED, RETRY/FAILED (from error), RELEASED
    result: JSON | None = None
    error: ErrorInfo | None = None
    # DONE or SKIPPED: what the finish records in the index, as data (ledger.artifacts).
    index: IndexArtifacts | None = None
    # The spool's chunks, read by the worker before the finish (a small spool); None with a
    # spool: the worker staged them in their own transactions (ledger.index.staged_chunks).
    rows: tuple[ChunkRow, ...] | None = None
    cleanup: Cleanup | None = None
    # RELEASED before the processor ever ran (claimed as a stop arrived): the document goes
    # back without an attempt row, since nothing was attempted.
    unstarted: bool = False
    # DONE only: the document's members, to become its child documents (None: it has none
    # and any it had stay; a tuple, even empty, replaces them).
    children: tuple[ChildFile, ...] | None = None
    # Run by the worker when the outcome's children were NOT created (the lease was lost,
    # the store failed, the worker gave up, the batch was cancelled): removes their
    # extracted files. Must not raise.
    discard: Cleanup | None = None
    # Run by the worker when they WERE created: removes the files of the children they
    # replaced (no row names them any more). Must not raise.
    replaced: Cleanup | None = None

    @classmethod
    def done(
        cls,
        doc: ClaimedDocument,
        result: JSON,
        index: IndexArtifacts | None = None,
        cleanup: Cleanup | None = None,
        children: tuple[ChildFile, ...] | None = None,
        discard: Cleanup | None = None,
        replaced: Cleanup | None = None,
    ) -> Outcome:
        return cls(
            document_id=doc.id, lease_token=doc.lease_token, outcome=AttemptOutcome.DONE,
            result=result, index=index, cleanup=cleanup, children=children, discard=discard,
            replaced=replaced,
        )  # fmt: skip

    @classmethod
    def skipped(
        cls,
        doc: ClaimedDocument,
        result: JSON,
        index: IndexArtifacts | None = None,
        cleanup: Cleanup | None = None,
    ) -> Outcome:
        return cls(
            document_id=doc.id, lease_token=doc.lease_token, outcome=AttemptOutcome.SKIPPED,
            result=result, index=index, cleanup=cleanup,
        )  # fmt: skip

    @classmethod
    def failed(cls, doc: ClaimedDocument, error: ErrorInfo) -> Outcome:
        if error.throttled:
            kind = AttemptOutcome.THROTTLED
        else:
            kind = AttemptOutcome.RETRY if error.retryable else AttemptOutcome.FAILED
        return cls(document_id=doc.id, lease_token=doc.lease_token, outcome=kind, error=error)

    @classmethod
    def released(cls, doc: ClaimedDocument) -> Outcome:
        return cls(document_id=doc.id, lease_token=doc.lease_token, outcome=AttemptOutcome.RELEASED)

    @classmethod
    def returned(cls, doc: ClaimedDocument) -> Outcome:
        """Give back a document that was claimed but never started."""
        return cls(
            document_id=doc.id,
            lease_token=doc.lease_token,
            outcome=AttemptOutcome.RELEASED,
            unstarted=True,
        )


class CompleteResult(Struct, frozen=True):
    recorded: list[int]  # document ids whose outcome was committed
    lost: list[int]  # document ids whose lease this worker no longer held
    # Where each recorded document ended up: a retryable error on the last attempt is FAILED.
    statuses: dict[int, DocumentStatus] = msgspec.field(default_factory=dict)
    # What each recorded attempt row says: a throttle past the limit is recorded as RETRY.
    outcomes: dict[int, AttemptOutcome] = msgspec.field(default_factory=dict)
    # Documents whose outcome's children were made child documents (their files are used).
    adopted: list[int] = msgspec.field(default_factory=list)
    # Leased in the same transaction, after the outcomes were recorded; None when no claim
    # was made there (not asked, or the outcomes created child documents).
    claimed: list[ClaimedDocument] | None = None
