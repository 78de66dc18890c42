"""What the ledger's workers are doing, and how fast a batch moves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta, Struct

from ledger.states import WorkerState


class ThroughputMinute(Struct, frozen=True, kw_only=True):
    """Attempts that ended in one UTC minute, by how they ended."""

    minute: datetime  # start of the minute, UTC
    done: int
    failed: int
    skipped: int
    retried: int  # retryable errors, expired leases, released or cancelled attempts
    per_second: float  # documents finished (done + failed + skipped) per second

    @classmethod
    def counted(
        cls, minute: datetime, *, done: int, failed: int, skipped: int, retried: int
    ) -> ThroughputMinute:
        finished = done + failed + skipped
        return cls(
            minute=minute, done=done, failed=failed, skipped=skipped, retried=retried,
            per_second=round(finished / 60, 4),
        )  # fmt: skip

    @property
    def finished(self) -> int:
        """Documents that reached an end (done, failed or skipped) in this minute."""
        return self.done + self.failed + self.skipped


class Throughput(Struct, frozen=True, kw_only=True):
    """A batch's throughput per minute, oldest minute first, every minute present, over a
    window ending at ``until``.

    ``truncated``: the window holds more attempts than were read, so its oldest minutes
    undercount (the read is bounded however fast the batch ran).
    """

    batch_id: str
    until: datetime
    truncated: bool  # more attempts than were read: the oldest minutes undercount
    minutes: list[ThroughputMinute]


class WorkerInfo(Struct, frozen=True, kw_only=True):
    """A worker process and what it is doing; its state is derived when read."""

    id: str
    host: str
    pid: int
    state: Annotated[
        WorkerState,
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
