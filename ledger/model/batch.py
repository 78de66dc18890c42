"""Batches: what a caller asks for, and the batch and its progress as the ledger reads them.

The same records are the API's response bodies (their OpenAPI components).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

import msgspec
from msgspec import Meta, Struct

from ledger.states import BatchState, BatchStatus, DocumentStatus

JSON = dict[str, Any]
T = TypeVar("T")


class BatchSpec(Struct, frozen=True):
    """What a batch is asked to be. ``id`` None means the ledger generates one."""

    id: str | None = None
    name: str | None = None
    processor: str = "ingest"
    options: JSON = msgspec.field(default_factory=dict)
    priority: int = 0
    max_attempts: int | None = None  # None: the ledger's default
    owner: str | None = None
    # The folders or files it is submitted from (absolute paths): its sources are cited
    # relative to them (docs/api.md, search). Recorded when the batch is created.
    roots: tuple[str, ...] | None = None


class UnchangedSkip(Struct, frozen=True):
    """Ask ``submit`` to skip, at once, the new sources whose content is already indexed
    for the batch's owner and has not changed (the ingest processor's dedup rule, decided
    before any worker runs). ``model``: the holder must also carry this model's vectors."""

    model: str | None = None


class SourceSpec(Struct, frozen=True):
    """One document to submit: a source and what is known of it at submit time."""

    source: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    meta: JSON | None = None


class Totals(NamedTuple):
    """What a batch's counts say about it as a whole."""

    status: BatchStatus
    total: int
    finished: int
    complete: bool


def totals(state: BatchState, counts: dict[DocumentStatus, int]) -> Totals:
    """Where a batch stands, in the one word every face shows and filters on.

    A batch with nothing left to do is complete, an empty one included, unless someone
    paused it before anything arrived: that pause is the one fact it has (the SQL filter in
    queue/progress.py says the same from the counter columns).
    """
    total = sum(counts.values())
    finished = total - counts[DocumentStatus.PENDING] - counts[DocumentStatus.RUNNING]
    complete = finished == total
    return Totals(_status(state, counts, total, complete), total, finished, complete)


def _status(
    state: BatchState, counts: dict[DocumentStatus, int], total: int, complete: bool
) -> BatchStatus:
    if state == BatchState.CANCELLED:
        return BatchStatus.CANCELLED
    if state == BatchState.PAUSED and total == 0:
        return BatchStatus.PAUSED
    if complete:
        return BatchStatus.COMPLETE
    if state == BatchState.PAUSED:
        return BatchStatus.PAUSED
    if counts[DocumentStatus.RUNNING]:
        return BatchStatus.RUNNING
    return BatchStatus.PENDING


class Batch(Struct, frozen=True):
    """A batch with its exact counts; ``status`` to ``complete`` follow from them
    (:func:`totals`, applied where the row is read)."""

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
    options: JSON
    max_attempts: int
    counts: dict[DocumentStatus, int]
    total: int
    finished: int
    complete: bool  # nothing left to do: every document done, failed, skipped or cancelled
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class SubmitResult(Struct, frozen=True):
    batch: Batch
    created: bool  # False: the batch existed and this was a resubmission
    added: int  # documents new to the batch
    known: int  # sources the batch already had
    requeued: int = 0  # known sources whose size, mtime or sha256 changed: to be done again
    skipped: int = 0  # new sources found indexed and unchanged: skipped at submit


class SinkProgress(Struct, frozen=True):
    """How far one sink has mirrored the batch's documents into its store."""

    pending: int
    done: int
    failed: int
    last_error: str | None


class Progress(Struct, frozen=True):
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
    sinks: dict[str, SinkProgress] = msgspec.field(default_factory=dict)

    @property
    def percent(self) -> float:
        total = self.batch.total
        return 100.0 if total == 0 else 100.0 * self.batch.finished / total


class FailureGroup(Struct, frozen=True):
    """Failed documents that share an error code."""

    code: str
    count: int
    example_message: str | None


class QueueDepth(Struct, frozen=True):
    """How much of one unfinished batch is left, read from its maintained counters."""

    batch_id: str
    owner: str | None
    pending: int
    running: int


class Page(Struct, Generic[T], frozen=True):
    items: list[T]
    next_cursor: str | None
