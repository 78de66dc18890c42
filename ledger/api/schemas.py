"""Request bodies and response envelopes of the HTTP API: msgspec Structs, so the OpenAPI
schema is exact.

The records themselves (a batch, a document, an attempt...) are the ledger's own types from
:mod:`ledger.model`, sent as they are or as their public view; this module only holds what
is particular to the API: requests, pages, and answers that combine records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta, Struct

from ledger.model import (
    AttemptView,
    Batch,
    DocumentInfo,
    FailureGroup,
    Page,
    Progress,
    SearchHit,
    SinkProgress,
    WorkerInfo,
)
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


class SkippedPathOut(Struct, kw_only=True):
    """An entry of a submitted folder that was left out, and why."""

    path: str
    reason: str


class ProgressOut(Batch, frozen=True, kw_only=True):
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
    batch: Batch
    # What the request that created the batch left out of its folders (first 100 of
    # skipped_paths_count); empty in every other answer.
    skipped_paths: list[SkippedPathOut] = msgspec.field(default_factory=list)
    skipped_paths_count: int = 0
    sinks: Annotated[
        dict[str, SinkProgress],
        Meta(
            description="per sink profile the batch names: its documents' versions pending,"
            " done and failed in the store; apart from complete, which is about documents"
        ),
    ] = msgspec.field(default_factory=dict)

    @classmethod
    def from_progress(
        cls, p: Progress, skipped: list[tuple[str, str]] | None = None, skipped_count: int = 0
    ) -> ProgressOut:
        batch = p.batch
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
            sinks=dict(p.sinks),
        )


class BatchPage(Struct, kw_only=True):
    items: list[Batch]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[Batch]) -> BatchPage:
        return cls(items=page.items, next_cursor=page.next_cursor)


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
    batch: Batch


# ---------------------------------------------------------------------------- documents


class DocumentDetail(Struct, kw_only=True):
    document: DocumentInfo
    attempts: list[AttemptView]


class DocumentPage(Struct, kw_only=True):
    items: list[DocumentInfo]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[DocumentInfo]) -> DocumentPage:
        return cls(items=[d.public() for d in page.items], next_cursor=page.next_cursor)


class Failures(Struct, kw_only=True):
    batch_id: str
    total: int
    groups: list[FailureGroup]


class UploadedFile(Struct, kw_only=True):
    """One stored file part of an upload; ``source`` is its document's source."""

    source: str
    filename: str | None
    size: int
    sha256: str
    content_type: str | None


class UploadResult(Struct, kw_only=True):
    """What one multipart upload added to its batch (one document per file part)."""

    batch: Batch
    files: list[UploadedFile]
    added: int  # documents new to the batch


# ---------------------------------------------------------------------------- events


# ---------------------------------------------------------------------------- search, ops


class SearchResults(Struct, kw_only=True):
    query: str
    k: int
    hits: list[SearchHit]


class Health(Struct, kw_only=True):
    status: str  # "ok" or "degraded"
    database: str  # "ok" or why it is not
    version: str
    workers: str = "off"  # in-process workers: "ok", "off", or why they are down


# ---------------------------------------------------------------------------- throughput


class WorkerPage(Struct, kw_only=True):
    items: list[WorkerInfo]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[WorkerInfo]) -> WorkerPage:
        return cls(items=page.items, next_cursor=page.next_cursor)
