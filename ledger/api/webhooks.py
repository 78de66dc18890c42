"""Webhooks: a tenant subscribes URLs (on hosts the operator allows) to its batches' events,
and reads what was delivered. The signing secret is in the creation answer only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct

from ledger.api.errors import ERROR_RESPONSES
from ledger.app import Ledger
from ledger.notify.events import SUBSCRIBABLE
from ledger.notify.hosts import MAX_URL
from ledger.notify.records import Delivery, Webhook
from ledger.notify.service import Webhooks

WebhookId = Annotated[str, Parameter(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")]
EVENT_NAMES = ", ".join(e.value for e in SUBSCRIBABLE)


class WebhookCreate(Struct, kw_only=True, forbid_unknown_fields=True):
    """A subscription: where to POST, and which events."""

    url: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=MAX_URL,
            description="http(s) URL on a host the operator allows (LEDGER_WEBHOOK_ALLOWED_HOSTS)",
        ),
    ]
    events: Annotated[
        list[Annotated[str, Meta(max_length=32)]],
        Meta(min_length=1, max_length=8, description=f"any of {EVENT_NAMES}"),
    ]
    failure_threshold: (
        Annotated[
            float,
            Meta(
                ge=0,
                lt=1,
                description="batch.failures fires once per batch when failed / finished "
                "documents exceeds this (default 0.5)",
            ),
        ]
        | None
    ) = None


class WebhookOut(Struct, kw_only=True):
    id: str
    url: str
    events: list[str]
    failure_threshold: float
    created_at: datetime

    @classmethod
    def of(cls, hook: Webhook) -> WebhookOut:
        return cls(
            id=hook.id,
            url=hook.url,
            events=list(hook.events),
            failure_threshold=hook.failure_threshold,
            created_at=hook.created_at,
        )


class WebhookCreated(WebhookOut, kw_only=True):
    secret: str = ""  # whsec_...: verify signatures with it; shown only in this answer

    @classmethod
    def made(cls, hook: Webhook, secret: str) -> WebhookCreated:
        return cls(**msgspec.structs.asdict(WebhookOut.of(hook)), secret=secret)


class WebhookList(Struct, kw_only=True):
    items: list[WebhookOut]


class DeliveryOut(Struct, kw_only=True):
    id: int
    event_id: str
    event_type: str
    batch_id: str | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            batch_id=d.batch_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            created_at=d.created_at,
            finished_at=d.finished_at,
        )


class DeliveryList(Struct, kw_only=True):
    items: list[DeliveryOut]


class WebhookController(Controller):
    path = "/webhooks"
    tags = ("webhooks",)

    @post(
        "/",
        operation_id="createWebhook",
        responses=ERROR_RESPONSES,
        status_code=201,
        summary="Subscribe a URL to events of your batches",
        description="422 when the URL's host is not one the operator allows. The answer "
        "holds the signing secret; it is never shown again.",
    )
    async def create(
        self, data: WebhookCreate, ledger: Ledger, owner: str | None
    ) -> WebhookCreated:
        hook, secret = await Webhooks(ledger).create(
            data.url, data.events, owner=owner, failure_threshold=data.failure_threshold
        )
        return WebhookCreated.made(hook, secret)

    @get("/", operation_id="listWebhooks", responses=ERROR_RESPONSES, summary="Your webhooks")
    async def list_webhooks(self, ledger: Ledger, owner: str | None) -> WebhookList:
        return WebhookList(
            items=[WebhookOut.of(h) for h in await Webhooks(ledger).all(owner=owner)]
        )

    @get(
        "/{webhook_id:str}",
        operation_id="getWebhook",
        responses=ERROR_RESPONSES,
        summary="One webhook",
    )
    async def get_webhook(
        self, webhook_id: WebhookId, ledger: Ledger, owner: str | None
    ) -> WebhookOut:
        return WebhookOut.of(await Webhooks(ledger).get(webhook_id, owner=owner))

    @delete(
        "/{webhook_id:str}",
        operation_id="deleteWebhook",
        responses=ERROR_RESPONSES,
        summary="Remove a webhook; its pending deliveries are not sent",
    )
    async def remove(self, webhook_id: WebhookId, ledger: Ledger, owner: str | None) -> None:
        await Webhooks(ledger).remove(webhook_id, owner=owner)

    @get(
        "/{webhook_id:str}/deliveries",
        operation_id="listWebhookDeliveries",
        responses=ERROR_RESPONSES,
        summary="A webhook's latest deliveries, newest first",
    )
    async def deliveries(
        self,
        webhook_id: WebhookId,
        ledger: Ledger,
        owner: str | None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    ) -> DeliveryList:
        found = await Webhooks(ledger).deliveries(webhook_id, owner=owner, limit=limit)
        return DeliveryList(items=[DeliveryOut.of(d) for d in found])
