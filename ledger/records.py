"""Values that cross the ledger's boundary: what callers hand in and what they get back.

Frozen dataclasses with no I/O. The ledger core turns rows into these; the CLI, the API and
the workers only ever see these.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ledger.states import (
    AttemptOutcome,
    BatchState,
    BatchStatus,
    DocumentStatus,
    UploadState,
    WorkerState,
)

if TYPE_CHECKING:  # records are plain values: loading them loads no database library
    from sqlalchemy.ext.asyncio import AsyncConnection

JSON = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class BatchSpec:
    """What a batch is asked to be. ``id`` None means the ledger generates one."""

    id: str | None = None
    name: str | None = None
    processor: str = "ingest"
    options: JSON = field(default_factory=dict)
    priority: int = 0
    max_attempts: int | None = None  # None: the ledger's default
    owner: str | None = None
    # The folders or files it is submitted from (absolute paths): its sources are cited
    # relative to them (docs/api.md, search). Recorded when the batch is created.
    roots: tuple[str, ...] | None = None


@dataclass(frozen=True)
class UnchangedSkip:
    """Ask ``submit`` to skip, at once, the new sources whose content is already indexed
    for the batch's owner and has not changed (the ingest processor's dedup rule, decided
    before any worker runs). ``model``: the holder must also carry this model's vectors."""

    model: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """One document to submit: a source and what is known of it at submit time."""

    source: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    meta: JSON | None = None


@dataclass(frozen=True)
class Batch:
    id: str
    name: str | None
    owner: str | None
    state: BatchState
    pause_reason: str | None
    priority: int
    processor: str
    options: JSON
    max_attempts: int
    counts: Mapping[DocumentStatus, int]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        return (
            self.total - self.counts[DocumentStatus.PENDING] - self.counts[DocumentStatus.RUNNING]
        )

    @property
    def is_complete(self) -> bool:
        """Nothing left to do: every document is done, failed, skipped or cancelled."""
        return self.finished == self.total

    @property
    def status(self) -> BatchStatus:
        """Where the batch stands, in the one word every face shows and filters on.

        A batch with nothing left to do is complete, an empty one included, unless someone
        paused it before anything arrived: that pause is the one fact it has (the SQL filter
        in queue/progress.py says the same from the counter columns).
        """
        if self.state == BatchState.CANCELLED:
            return BatchStatus.CANCELLED
        if self.state == BatchState.PAUSED and self.total == 0:
            return BatchStatus.PAUSED
        if self.is_complete:
            return BatchStatus.COMPLETE
        if self.state == BatchState.PAUSED:
            return BatchStatus.PAUSED
        if self.counts[DocumentStatus.RUNNING]:
            return BatchStatus.RUNNING
        return BatchStatus.PENDING


@dataclass(frozen=True)
class SubmitResult:
    batch: Batch
    created: bool  # False: the batch existed and this was a resubmission
    added: int  # documents new to the batch
    known: int  # sources the batch already had
    requeued: int = 0  # known sources whose size, mtime or sha256 changed: to be done again
    skipped: int = 0  # new sources found indexed and unchanged: skipped at submit


@dataclass(frozen=True)
class SinkProgress:
    """How far one sink has mirrored a batch's documents."""

    pending: int = 0
    done: int = 0
    failed: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class Progress:
    """A batch's counts with its recent rate and the time it will still take."""

    batch: Batch
    rate: float | None  # documents finished per second over the recent window
    eta_seconds: float | None
    last_finished_at: datetime | None
    # Set while the batch has due work and no live worker can run its processor: it waits
    # (it never fails for that) until a worker that can starts.
    waiting_for_processor: str | None = None
    # Per sink profile the batch names: its documents' versions pending, done and failed in
    # the store, and the latest error. Apart from ``complete``, which is about documents.
    sinks: Mapping[str, SinkProgress] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        total = self.batch.total
        return 100.0 if total == 0 else 100.0 * self.batch.finished / total


@dataclass(frozen=True)
class ClaimedDocument:
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


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str
    retryable: bool
    systemic: bool = False
    retry_after: float | None = None
    # The remote side asked us to slow down (ledger.backpressure.Throttled): rescheduled
    # after ``retry_after`` without charging an attempt, up to LEDGER_THROTTLE_LIMIT in a row.
    throttled: bool = False


# Extra writes that must commit with a document's outcome (for example its chunks), run by
# the ledger inside the completing transaction, only when the lease is still held.
TransactionalWrite = Callable[["AsyncConnection"], Awaitable[None]]
# Run by the worker once an outcome is recorded, or dropped (its lease was lost): removes
# what only the write needed (a chunk spool file, say). Must not raise.
Cleanup = Callable[[], None]


@dataclass(frozen=True)
class ChildFile:
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


@dataclass(frozen=True)
class Outcome:
    """How a worker's attempt at one document ended."""

    document_id: int
    lease_token: str
    outcome: AttemptOutcome  # DONE, SKIPPED, RETRY/FAILED (from error), RELEASED
    result: JSON | None = None
    error: ErrorInfo | None = None
    write: TransactionalWrite | None = None
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

    @classmethod
    def done(
        cls,
        doc: ClaimedDocument,
        result: JSON,
        write: TransactionalWrite | None = None,
        cleanup: Cleanup | None = None,
        children: tuple[ChildFile, ...] | None = None,
        discard: Cleanup | None = None,
    ) -> Outcome:
        return cls(
            doc.id, doc.lease_token, AttemptOutcome.DONE, result=result, write=write,
            cleanup=cleanup, children=children, discard=discard,
        )  # fmt: skip

    @classmethod
    def skipped(
        cls,
        doc: ClaimedDocument,
        result: JSON,
        write: TransactionalWrite | None = None,
        cleanup: Cleanup | None = None,
    ) -> Outcome:
        return cls(
            doc.id, doc.lease_token, AttemptOutcome.SKIPPED, result=result, write=write,
            cleanup=cleanup,
        )  # fmt: skip

    @classmethod
    def failed(cls, doc: ClaimedDocument, error: ErrorInfo) -> Outcome:
        if error.throttled:
            kind = AttemptOutcome.THROTTLED
        else:
            kind = AttemptOutcome.RETRY if error.retryable else AttemptOutcome.FAILED
        return cls(doc.id, doc.lease_token, kind, error=error)

    @classmethod
    def released(cls, doc: ClaimedDocument) -> Outcome:
        return cls(doc.id, doc.lease_token, AttemptOutcome.RELEASED)

    @classmethod
    def returned(cls, doc: ClaimedDocument) -> Outcome:
        """Give back a document that was claimed but never started."""
        return cls(doc.id, doc.lease_token, AttemptOutcome.RELEASED, unstarted=True)


@dataclass(frozen=True)
class CompleteResult:
    recorded: list[int]  # document ids whose outcome was committed
    lost: list[int]  # document ids whose lease this worker no longer held
    # Where each recorded document ended up: a retryable error on the last attempt is FAILED.
    statuses: dict[int, DocumentStatus] = field(default_factory=dict)
    # What each recorded attempt row says: a throttle past the limit is recorded as RETRY.
    outcomes: dict[int, AttemptOutcome] = field(default_factory=dict)
    # Documents whose outcome's children were made child documents (their files are used).
    adopted: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    batch_id: str
    source: str
    status: DocumentStatus
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    error_code: str | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    result: JSON | None
    meta: JSON | None
    size: int | None
    sha256: str | None
    created_at: datetime
    # A member of an archive or email: the document it came from and its path inside it.
    parent_id: int | None = None
    member_path: str | None = None


@dataclass(frozen=True)
class AttemptInfo:
    id: int
    document_id: int
    attempt: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    outcome: AttemptOutcome
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True)
class FailureGroup:
    code: str
    count: int
    example_message: str | None


@dataclass(frozen=True)
class Event:
    id: int
    batch_id: str
    document_id: int | None
    kind: str
    data: JSON | None
    created_at: datetime
    # The document's source, read with the event, so a live view can name what finished.
    document_source: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


# --------------------------------------------------------------------------- API


@dataclass(frozen=True)
class ApiKey:
    """An API key as listed: never the key itself, only its public id and first characters."""

    id: str
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    role: str = "tenant"


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid, unrevoked API key is: its public id, its tenant and its role."""

    key_id: str
    tenant: str
    role: str  # 'tenant' or 'operator' (see keys.ROLES)


@dataclass(frozen=True)
class QueueDepth:
    """How much of one unfinished batch is left, read from its maintained counters."""

    batch_id: str
    owner: str | None
    pending: int
    running: int


@dataclass(frozen=True)
class ThroughputMinute:
    """Attempts at a batch's documents that ended in one UTC minute, by how they ended."""

    minute: datetime  # start of the minute, UTC
    done: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0  # retryable errors, expired leases, released or cancelled attempts

    @property
    def finished(self) -> int:
        """Documents that reached an end (done, failed or skipped) in this minute."""
        return self.done + self.failed + self.skipped


@dataclass(frozen=True)
class Throughput:
    """A batch's attempts per minute over a window ending at ``until`` (oldest first).

    ``truncated``: the window holds more attempts than were read, so its oldest minutes
    undercount (the read is bounded however fast the batch ran).
    """

    batch_id: str
    until: datetime
    minutes: list[ThroughputMinute]
    truncated: bool


# --------------------------------------------------------------------------- tus uploads


@dataclass(frozen=True)
class UploadSpec:
    """What a new resumable upload is to become: its size and where its document goes."""

    batch_id: str
    length: int | None  # None: the client tells the length later (deferred)
    owner: str | None = None
    filename: str | None = None
    processor: str | None = None  # for a batch that does not exist yet
    metadata_header: str | None = None
    meta: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    """One resumable upload as the ledger holds it. ``offset`` bytes are durably stored."""

    id: str
    owner: str | None
    state: UploadState
    length: int | None
    offset: int
    metadata_header: str | None
    meta: JSON
    batch_id: str
    filename: str | None
    processor: str | None
    path: str
    sha256: str | None
    document_id: int | None
    writer_token: str | None
    locked_until: datetime | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    ended_at: datetime | None

    def writer_active(self, now: datetime) -> bool:
        """Whether some request holds this upload's lease at ``now``."""
        return self.locked_until is not None and self.locked_until > now


# --------------------------------------------------------------------------- chunk index


@dataclass(frozen=True)
class IndexedDocument:
    """A document whose chunks are the indexed text of its source (done, not superseded)."""

    id: int
    batch_id: str
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    chunks: int | None  # from its result


@dataclass(frozen=True)
class SearchHit:
    """One chunk that matched a search. ``score``: higher is better (BM25 on SQLite,
    ``ts_rank_cd`` on PostgreSQL; comparable within one backend only)."""

    chunk_id: int
    document_id: int
    batch_id: str
    source: str  # the server path, or for an upload its file name: never where it is stored
    source_name: str  # how to cite it: an upload's file name, else the source path
    ordinal: int
    page: int | None
    char_start: int
    char_end: int
    text: str
    snippet: str  # a short excerpt with the matches between « and »
    score: float


@dataclass(frozen=True)
class PlanGroup:
    """How many sources fall in one group, and the first ``listed`` of them."""

    count: int = 0
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    """What submitting these sources would do, against what is indexed for the owner.

    new: no document of the owner holds this source's text; changed: it is indexed but the
    size, modification time or SHA-256 differ (or nothing is known to compare); unchanged:
    indexed with the same size and modification time (or the same SHA-256); gone: indexed
    under the planned roots (or in the planned batch) but not among the sources.
    """

    new: PlanGroup
    changed: PlanGroup
    unchanged: PlanGroup
    gone: PlanGroup


@dataclass(frozen=True)
class WorkerInfo:
    """One worker process as listed: who, where, what it can run and what it is doing."""

    id: str
    hostname: str
    pid: int
    state: WorkerState
    processors: list[str]
    concurrency: int
    in_flight: int  # documents it holds a lease on now (running)
    finished: int  # documents whose attempt it ended done, skipped or failed
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
