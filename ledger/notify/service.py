"""What the faces (API, CLI) call: each method one transaction through the ledger's runner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.runner import Runner
from ledger.model import Delivery, Webhook
from ledger.notify import store


class Webhooks:
    """A tenant's webhooks (``owner``; None is the operator, who sees them all)."""

    def __init__(self, runner: Runner) -> None:
        self._db = runner

    async def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        owner: str | None,
        failure_threshold: float | None = None,
    ) -> tuple[Webhook, str]:
        """Subscribe ``url``; returns the webhook and its secret, shown this once."""
        hosts = self._db.settings.webhook_allowed_hosts

        async def work(conn: AsyncConnection, now: datetime) -> tuple[Webhook, str]:
            return await store.create(
                conn,
                owner=owner,
                url=url,
                event_types=events,
                failure_threshold=failure_threshold,
                allowed_hosts=hosts,
                now=now,
            )

        return await self._db.run(work)

    async def all(self, *, owner: str | None) -> list[Webhook]:
        async def work(conn: AsyncConnection, now: datetime) -> list[Webhook]:
            return await store.list_webhooks(conn, owner)

        return await self._db.run(work, write=False)

    async def get(self, webhook_id: str, *, owner: str | None) -> Webhook:
        async def work(conn: AsyncConnection, now: datetime) -> Webhook:
            return await store.get(conn, webhook_id, owner)

        return await self._db.run(work, write=False)

    async def remove(self, webhook_id: str, *, owner: str | None) -> None:
        """Delete the webhook; its pending deliveries are dropped unsent."""

        async def work(conn: AsyncConnection, now: datetime) -> None:
            await store.remove(conn, webhook_id, owner)

        await self._db.run(work)

    async def deliveries(
        self, webhook_id: str, *, owner: str | None, limit: int = 100
    ) -> list[Delivery]:
        """The webhook's latest deliveries, newest first."""

        async def work(conn: AsyncConnection, now: datetime) -> list[Delivery]:
            return await store.deliveries(conn, webhook_id, owner, limit=limit)

        return await self._db.run(work, write=False)

    async def test(self, webhook_id: str, *, owner: str | None) -> Delivery:
        """Queue a ``webhook.test`` event for the webhook; the sender posts it."""

        async def work(conn: AsyncConnection, now: datetime) -> Delivery:
            return await store.enqueue_test(conn, webhook_id, owner, now=now)

        return await self._db.run(work)
