"""Webhooks and their deliveries: what clients see (never the secret, except the one time
it is made, and never another tenant's rows), and what the sender claims."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct

from ledger.model.view import view


class WebhookView(Struct, frozen=True, kw_only=True):
    id: str
    url: str
    events: list[str]
    failure_threshold: float
    created_at: datetime


class Webhook(WebhookView, frozen=True, kw_only=True):
    owner: str | None

    def public(self) -> WebhookView:
        return view(self, WebhookView)


class DeliveryView(Struct, frozen=True, kw_only=True):
    id: int
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


class Delivery(DeliveryView, frozen=True, kw_only=True):
    webhook_id: str

    def public(self) -> DeliveryView:
        return view(self, DeliveryView)


class Outgoing(Struct, frozen=True):
    """A claimed delivery, with what sending it needs (the lease proves it is still ours)."""

    id: int
    event_id: str
    url: str
    secret: str
    body: str
    attempts: int  # before this one
    created_at: datetime
    lease_token: str


class SendResult(Struct, frozen=True):
    status_code: int | None
    error: str | None

    @property
    def acknowledged(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
