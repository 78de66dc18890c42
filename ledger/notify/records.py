"""What the faces get back about webhooks and their deliveries (never the secret, except
the one time it is made)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Webhook:
    id: str
    owner: str | None
    url: str
    events: tuple[str, ...]
    failure_threshold: float
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: int
    webhook_id: str
    event_id: str
    event_type: str
    batch_id: str | None
    status: str  # pending, delivered, failed
    attempts: int
    next_attempt_at: datetime | None  # None once delivered or failed
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Outgoing:
    """A claimed delivery, with what sending it needs (the lease proves it is still ours)."""

    id: int
    event_id: str
    url: str
    secret: str
    body: str
    attempts: int  # before this one
    created_at: datetime
    lease_token: str


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error: str | None

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
