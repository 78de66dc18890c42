"""Webhooks: a tenant subscribes URLs (on hosts the operator allows) to its batches' events,
and reads what was delivered. The signing secret is in the creation answer only."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter
from msgspec import Meta, Struct

from ledger.api.errors import ERROR_RESPONSES
from ledger.app import Ledger
from ledger.model import DeliveryView, Webhook, WebhookView
from ledger.model.view import view
from ledger.notify.events import SUBSCRIBABLE
from ledger.notify.hosts import MAX_URL
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


class WebhookCreated(WebhookView, frozen=True, kw_only=True):
    secret: str = ""  # whsec_...: verify signatures with it; shown only in this answer

    @classmethod
    def made(cls, hook: Webhook, secret: str) -> WebhookCreated:
        return view(hook, cls, secret=secret)


class WebhookList(Struct, kw_only=True):
    items: list[WebhookView]


class DeliveryList(Struct, kw_only=True):
    items: list[DeliveryView]


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
        hook, secret = await Webhooks(ledger.runner).create(
            data.url, data.events, owner=owner, failure_threshold=data.failure_threshold
        )
        return WebhookCreated.made(hook, secret)

    @get("/", operation_id="listWebhooks", responses=ERROR_RESPONSES, summary="Your webhooks")
    async def list_webhooks(self, ledger: Ledger, owner: str | None) -> WebhookList:
        return WebhookList(
            items=[h.public() for h in await Webhooks(ledger.runner).all(owner=owner)]
        )

    @get(
        "/{webhook_id:str}",
        operation_id="getWebhook",
        responses=ERROR_RESPONSES,
        summary="One webhook",
    )
    async def get_webhook(
        self, webhook_id: WebhookId, ledger: Ledger, owner: str | None
    ) -> WebhookView:
        return (await Webhooks(ledger.runner).get(webhook_id, owner=owner)).public()

    @delete(
        "/{webhook_id:str}",
        operation_id="deleteWebhook",
        responses=ERROR_RESPONSES,
        summary="Remove a webhook; its pending deliveries are not sent",
    )
    async def remove(self, webhook_id: WebhookId, ledger: Ledger, owner: str | None) -> None:
        await Webhooks(ledger.runner).remove(webhook_id, owner=owner)

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
        found = await Webhooks(ledger.runner).deliveries(webhook_id, owner=owner, limit=limit)
        return DeliveryList(items=[d.public() for d in found])
