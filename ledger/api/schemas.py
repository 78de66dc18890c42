"""Request and response bodies of the HTTP API: msgspec Structs, so the OpenAPI schema is exact.

Converters from ledger records live beside the types they fill.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from ledger.records import (
    AttemptInfo,
    Batch,
    DocumentInfo,
    Event,
    FailureGroup,
    Page,
    Progress,
    Throughput,
    ThroughputMinute,
    WorkerInfo,
)
from ledger.states import AttemptOutcome, BatchState, BatchStatus, DocumentStatus
from ledger.text import escaped
from ledger.wording import waiting_note

BatchId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s/\\?#%\x00-\x1f\x7f]+$",
        description="1 to 200 characters; no spaces, control characters, / \\ ? # %",
    ),
]
Cursor = Annotated[
    str,
    Meta(
        max_length=2000,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="opaque: the next_cursor of the previous page",
    ),
]


class Problem(Struct, kw_only=True, omit_defaults=True):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# ---------------------------------------------------------------------------- batches


class BatchCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    """A new batch, optionally with server files (under the configured allowed roots)."""

    id: BatchId | None = None
    name: Annotated[str, Meta(max_length=500)] | None = None
    processor: Annotated[str, Meta(min_length=1, max_length=500)] = "ingest"
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] = 0
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] | None = None
    paths: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=4096)]], Meta(max_length=10_000)
    ] = msgspec.field(default_factory=list)
    glob: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    include: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=500)]],
        Meta(max_length=100, description="gitignore-style patterns: only files matching one"),
    ] = msgspec.field(default_factory=list)
    exclude: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=500)]],
        Meta(max_length=100, description="gitignore-style patterns: files left out (wins)"),
    ] = msgspec.field(default_factory=list)


class BatchOut(Struct, kw_only=True):
    id: str
    name: str | None
    owner: str | None
    state: BatchState
    status: Annotated[
        BatchStatus,
        Meta(
            description="where it stands: the word the CLI shows and ?state= filters on"
            " (an empty batch is complete)"
        ),
    ]
    pause_reason: str | None
    priority: int
    processor: str
    options: dict[str, Any]
    max_attempts: int
    counts: dict[DocumentStatus, int]
    total: int
    finished: int
    complete: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, b: Batch) -> BatchOut:
        return cls(
            id=b.id,
            name=b.name,
            owner=b.owner,
            state=b.state,
            status=b.status,
            pause_reason=b.pause_reason,
            priority=b.priority,
            processor=b.processor,
            options=dict(b.options),
            max_attempts=b.max_attempts,
            counts={s: b.counts.get(s, 0) for s in DocumentStatus},
            total=b.total,
            finished=b.finished,
            complete=b.is_complete,
            created_at=b.created_at,
            updated_at=b.updated_at,
            started_at=b.started_at,
            completed_at=b.completed_at,
        )


class SkippedPathOut(Struct, kw_only=True):
    """An entry of a submitted folder that was left out, and why."""

    path: str
    reason: str


class SinkProgressOut(Struct, kw_only=True):
    """How far one sink has mirrored the batch's documents into its store."""

    pending: int
    done: int
    failed: int
    last_error: str | None


class ProgressOut(BatchOut, kw_only=True):
    """A batch with its progress: exact counts, recent rate and estimated time left.

    Every answer about one batch (create, read, change, SSE ``progress``) has this shape:
    the batch's own fields at the top level, its progress beside them, and the same batch
    fields again under ``batch`` for clients written against the earlier nested form."""

    percent: float
    rate_per_second: float | None  # documents finished per second (the CLI's name too)
    rate: float | None  # the same value, under its earlier name
    eta_seconds: float | None
    last_finished_at: datetime | None
    waiting_for_processor: Annotated[
        str | None,
        Meta(
            description="set while the batch has due work and no live worker can run its"
            " processor: it waits (it never fails for that) until such a worker starts"
        ),
    ] = None
    note: Annotated[
        str | None,
        Meta(description="why the batch is not moving, in words (for example who it waits for)"),
    ] = None
    batch: BatchOut
    # What the request that created the batch left out of its folders (first 100 of
    # skipped_paths_count); empty in every other answer.
    skipped_paths: list[SkippedPathOut] = msgspec.field(default_factory=list)
    skipped_paths_count: int = 0
    sinks: Annotated[
        dict[str, SinkProgressOut],
        Meta(
            description="per sink profile the batch names: its documents' versions pending,"
            " done and failed in the store; apart from complete, which is about documents"
        ),
    ] = msgspec.field(default_factory=dict)

    @classmethod
    def from_progress(
        cls, p: Progress, skipped: list[tuple[str, str]] | None = None, skipped_count: int = 0
    ) -> ProgressOut:
        batch = BatchOut.of(p.batch)
        return cls(
            **msgspec.structs.asdict(batch),
            percent=round(p.percent, 3),
            rate_per_second=p.rate,
            rate=p.rate,
            eta_seconds=p.eta_seconds,
            last_finished_at=p.last_finished_at,
            waiting_for_processor=p.waiting_for_processor,
            note=None if p.waiting_for_processor is None else waiting_note(p.waiting_for_processor),
            batch=batch,
            skipped_paths=[SkippedPathOut(path=a, reason=b) for a, b in skipped or []],
            skipped_paths_count=skipped_count,
            sinks={
                name: SinkProgressOut(
                    pending=s.pending, done=s.done, failed=s.failed, last_error=s.last_error
                )
                for name, s in p.sinks.items()
            },
        )


class BatchPage(Struct, kw_only=True):
    items: list[BatchOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Batch]) -> BatchPage:
        return cls(items=[BatchOut.of(b) for b in page.items], next_cursor=page.next_cursor)


class PauseRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(max_length=1000)] | None = None


class BatchUpdate(Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings of a submitted batch to change; a field left out stays as it is."""

    name: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
    priority: Annotated[int, Meta(ge=-1_000_000, le=1_000_000)] | None = None
    max_attempts: Annotated[int, Meta(ge=1, le=1000)] | None = None


class RetryRequest(Struct, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=100)] | None = None


class RetryResult(Struct, kw_only=True):
    retried: int  # documents put back to pending
    batch: BatchOut


# ---------------------------------------------------------------------------- documents


class DocumentOut(Struct, kw_only=True):
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
    result: dict[str, Any] | None
    meta: dict[str, Any] | None
    size: int | None
    sha256: str | None
    created_at: datetime
    # A member of an archive or email: the document it was extracted from, its path there.
    parent_id: int | None = None
    member_path: str | None = None

    @classmethod
    def of(cls, d: DocumentInfo) -> DocumentOut:
        return cls(
            id=d.id,
            batch_id=d.batch_id,
            source=escaped(d.source),  # a row written by another program may hold non-UTF-8
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            lease_owner=d.lease_owner,
            lease_expires_at=d.lease_expires_at,
            error_code=d.error_code,
            error_message=d.error_message,
            started_at=d.started_at,
            finished_at=d.finished_at,
            result=d.result,
            meta=d.meta,
            size=d.size,
            sha256=d.sha256,
            created_at=d.created_at,
            parent_id=d.parent_id,
            member_path=None if d.member_path is None else escaped(d.member_path),
        )


class AttemptOut(Struct, kw_only=True):
    id: int
    attempt: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    outcome: AttemptOutcome
    error_code: str | None
    error_message: str | None

    @classmethod
    def of(cls, a: AttemptInfo) -> AttemptOut:
        return cls(
            id=a.id,
            attempt=a.attempt,
            worker_id=a.worker_id,
            started_at=a.started_at,
            finished_at=a.finished_at,
            duration_seconds=a.duration_seconds,
            outcome=a.outcome,
            error_code=a.error_code,
            error_message=a.error_message,
        )


class DocumentDetail(Struct, kw_only=True):
    document: DocumentOut
    attempts: list[AttemptOut]


class DocumentPage(Struct, kw_only=True):
    items: list[DocumentOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[DocumentInfo]) -> DocumentPage:
        return cls(items=[DocumentOut.of(d) for d in page.items], next_cursor=page.next_cursor)


class FailureGroupOut(Struct, kw_only=True):
    code: str
    count: int
    example_message: str | None

    @classmethod
    def of(cls, g: FailureGroup) -> FailureGroupOut:
        return cls(code=g.code, count=g.count, example_message=g.example_message)


class Failures(Struct, kw_only=True):
    batch_id: str
    total: int
    groups: list[FailureGroupOut]


class UploadedFile(Struct, kw_only=True):
    """One stored file part of an upload; ``source`` is its document's source."""

    source: str
    filename: str | None
    size: int
    sha256: str
    content_type: str | None


class UploadResult(Struct, kw_only=True):
    """What one multipart upload added to its batch (one document per file part)."""

    batch: BatchOut
    files: list[UploadedFile]
    added: int  # documents new to the batch


# ---------------------------------------------------------------------------- events


def _document_event_data(e: Event) -> dict[str, Any] | None:
    """What a live view needs to show one document's transition without another request:
    its id, source, the status it moved to (``pending`` for a retry) and its error code."""
    if e.document_id is None or not e.kind.startswith("document_"):
        return e.data
    extra = dict(e.data) if isinstance(e.data, dict) else {}
    status = e.kind.removeprefix("document_")
    return {
        "document_id": e.document_id,
        "source": e.document_source,
        "status": "pending" if status == "retry" else status,
        "error_code": extra.pop("error_code", None),
        **extra,
    }


class EventOut(Struct, kw_only=True):
    """One row of the ledger's event log, as sent in an SSE ``data`` field. Per-document
    events (``document_done``, ``document_failed``, ``document_skipped``,
    ``document_retry``...) carry ``document_id``, ``source``, ``status`` and ``error_code``
    (and ``error_message`` on errors) in ``data``."""

    id: int
    batch_id: str
    document_id: int | None
    kind: str
    data: dict[str, Any] | None
    created_at: datetime

    @classmethod
    def of(cls, e: Event) -> EventOut:
        return cls(
            id=e.id,
            batch_id=e.batch_id,
            document_id=e.document_id,
            kind=e.kind,
            data=_document_event_data(e),
            created_at=e.created_at,
        )


# ---------------------------------------------------------------------------- search, ops


class SearchHitOut(Struct, kw_only=True):
    """One matching chunk: where it comes from (for citations) and how well it matched."""

    chunk_id: int
    document_id: int
    batch_id: str
    source: str  # the server path, or for an upload its file name (never its storage path)
    source_name: str  # how to cite it: an upload's original file name, else the source path
    ordinal: int
    page: int | None  # 1-based page of a paged format (PDF), else null
    char_start: int  # offsets of the chunk in the document's extracted text
    char_end: int
    text: str
    snippet: str  # a short excerpt with the matches between « and »
    score: float  # higher is better; comparable within one backend only


class SearchResults(Struct, kw_only=True):
    query: str
    k: int
    hits: list[SearchHitOut]


class Health(Struct, kw_only=True):
    status: str  # "ok" or "degraded"
    database: str  # "ok" or why it is not
    version: str
    workers: str = "off"  # in-process workers: "ok", "off", or why they are down


# ---------------------------------------------------------------------------- throughput


class ThroughputMinuteOut(Struct, kw_only=True):
    """Attempts that ended in one UTC minute, by how they ended."""

    minute: datetime  # start of the minute
    done: int
    failed: int
    skipped: int
    retried: int  # retryable errors, expired leases, released or cancelled attempts
    per_second: float  # documents finished (done + failed + skipped) per second

    @classmethod
    def of(cls, m: ThroughputMinute) -> ThroughputMinuteOut:
        return cls(
            minute=m.minute,
            done=m.done,
            failed=m.failed,
            skipped=m.skipped,
            retried=m.retried,
            per_second=round(m.finished / 60, 4),
        )


class ThroughputOut(Struct, kw_only=True):
    """A batch's throughput per minute, oldest minute first, every minute present."""

    batch_id: str
    until: datetime
    truncated: bool  # more attempts than were read: the oldest minutes undercount
    minutes: list[ThroughputMinuteOut]

    @classmethod
    def of(cls, t: Throughput) -> ThroughputOut:
        return cls(
            batch_id=t.batch_id,
            until=t.until,
            truncated=t.truncated,
            minutes=[ThroughputMinuteOut.of(m) for m in t.minutes],
        )


class WorkerOut(Struct, kw_only=True):
    """A worker process and what it is doing; its state is derived when read."""

    id: str
    host: str
    pid: int
    state: Annotated[
        str,
        Meta(
            description="alive; lost (no heartbeat within the lease time: killed or hung); stopped"
        ),
    ]
    processors: list[str]
    concurrency: int
    in_flight: Annotated[int, Meta(description="documents it holds a lease on now")]
    finished: Annotated[int, Meta(description="documents it ended done, skipped or failed")]
    started_at: datetime
    last_heartbeat_at: datetime
    stopped_at: datetime | None

    @classmethod
    def of(cls, w: WorkerInfo) -> WorkerOut:
        return cls(
            id=w.id,
            host=w.hostname,
            pid=w.pid,
            state=w.state.value,
            processors=list(w.processors),
            concurrency=w.concurrency,
            in_flight=w.in_flight,
            finished=w.finished,
            started_at=w.started_at,
            last_heartbeat_at=w.heartbeat_at,
            stopped_at=w.stopped_at,
        )


class WorkerPage(Struct, kw_only=True):
    items: list[WorkerOut]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[WorkerInfo]) -> WorkerPage:
        return cls(items=[WorkerOut.of(w) for w in page.items], next_cursor=page.next_cursor)
