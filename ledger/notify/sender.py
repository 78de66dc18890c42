"""The sender: scan for events, claim due deliveries, POST them, record what happened.

No transaction is open while a request is in flight: a claim commits, the POSTs run, and
each outcome commits on its own. Redirects are not followed (the operator allowed a host,
not wherever it points), proxies from the environment are not used, and the host is checked
again, resolved, right before each send; the request goes to the address that was checked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.backoff import RetryPolicy
from ledger.errors import NotAllowed
from ledger.leased_stage import LeasedStage
from ledger.model import Outgoing, SendResult
from ledger.notify import outbox, signing
from ledger.notify.hosts import Resolver, check_before_send, resolve
from ledger.notify.scan import scan

if TYPE_CHECKING:
    import httpx

    from ledger.app import Ledger

log = logging.getLogger(__name__)

PARALLEL_SENDS = 16  # deliveries claimed (and posted at once) per round


class WebhookSender(LeasedStage[Outgoing, tuple[datetime, list[SendResult]], list[str | None]]):
    """Delivers webhooks for one ledger. Any number may run; leases keep each delivery with
    one sender at a time. A round claims up to ``PARALLEL_SENDS`` deliveries, posts them at
    once and records every outcome together."""

    what = "webhook round"

    def __init__(
        self,
        ledger: Ledger,
        *,
        client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        settings = ledger.settings
        self.ledger = ledger
        self.settings = settings
        self.timeout = settings.webhook_timeout_seconds
        # Resolving and posting each get the timeout: a lease outlasts both, with a margin.
        self.lease = timedelta(seconds=2 * self.timeout + 5)
        self.policy = RetryPolicy(
            base=settings.webhook_backoff_base_seconds,
            factor=2.0,
            cap=settings.webhook_backoff_cap_seconds,
            jitter=0.5,
        )
        self.give_up_after = timedelta(hours=settings.webhook_retry_hours)
        self._client = client
        self._rng = rng or random.Random()
        self.resolver = resolver

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                follow_redirects=False, trust_env=False, timeout=httpx.Timeout(self.timeout)
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def scan(self) -> int:
        """Add the delivery rows owed since the last scan (one transaction)."""
        stall_after = timedelta(minutes=self.settings.webhook_stall_minutes)

        async def work(conn: AsyncConnection, now: datetime) -> int:
            return await scan(conn, now=now, stall_after=stall_after)

        return await self.ledger.runner.run(work)

    async def send_due(self) -> int:
        """Claim one round of due deliveries, post them at once, record every outcome in one
        transaction; returns how many were posted."""
        return await self.run_round()

    async def has_work(self) -> bool:
        """Scans first when there are webhooks (the deliveries owed since the last scan)."""

        async def look(conn: AsyncConnection, now: datetime) -> tuple[bool, bool]:
            return await outbox.anything_to_do(conn, now=now)

        hooks, due = await self.ledger.runner.run(look, write=False)
        if hooks:
            await self.scan()
        return hooks or due

    async def claim(self, conn: AsyncConnection, now: datetime) -> list[Outgoing]:
        return await outbox.claim(conn, now=now, lease=self.lease, limit=PARALLEL_SENDS)

    async def work(self, claimed: Sequence[Outgoing]) -> tuple[datetime, list[SendResult]]:
        started = await self.ledger.runner.now()
        return started, list(await asyncio.gather(*(self._post(o) for o in claimed)))

    async def record(
        self,
        conn: AsyncConnection,
        now: datetime,
        claimed: Sequence[Outgoing],
        done: tuple[datetime, list[SendResult]],
    ) -> list[str | None]:
        started, results = done
        return [
            await outbox.record(
                conn,
                outgoing,
                result,
                started_at=started,
                now=now,
                policy=self.policy,
                give_up_after=self.give_up_after,
                rng=self._rng,
            )
            for outgoing, result in zip(claimed, results, strict=True)
        ]

    def recorded(
        self,
        claimed: Sequence[Outgoing],
        done: tuple[datetime, list[SendResult]],
        recorded: list[str | None],
    ) -> None:
        for outgoing, result, status in zip(claimed, done[1], recorded, strict=True):
            log.info(
                "webhook %s (delivery %s): %s, HTTP %s%s",
                outgoing.event_id,
                outgoing.id,
                status or "lease lost (taken over, or the webhook was removed)",
                result.status_code,
                f" ({result.error})" if result.error else "",
            )

    async def run(self, *, interval: float | None = None) -> None:
        """Scan and send every ``interval`` seconds (LEDGER_WEBHOOK_SCAN_SECONDS) until
        cancelled (see :class:`ledger.leased_stage.LeasedStage`)."""
        await super().run(interval=interval or self.settings.webhook_scan_seconds)

    async def _post(self, outgoing: Outgoing) -> SendResult:
        import httpx

        try:
            pinned = await asyncio.wait_for(
                check_before_send(
                    outgoing.url, self.settings.webhook_allowed_hosts, resolver=self.resolver
                ),
                self.timeout,
            )
        except NotAllowed as exc:
            return SendResult(None, exc.message)
        except TimeoutError:
            return SendResult(None, "resolving the webhook host timed out")
        # The real time, whatever the ledger's clock: receivers reject stale timestamps.
        timestamp = int(time.time())
        headers = signing.headers(outgoing.secret, outgoing.event_id, timestamp, outgoing.body)
        headers["Host"] = pinned.host_header
        try:
            # To the checked address; TLS still verifies the certificate against the name.
            response = await self._http().post(
                pinned.url(outgoing.url),
                content=outgoing.body.encode(),
                headers=headers,
                extensions={"sni_hostname": pinned.target.host},
            )
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return SendResult(None, reason)
        return SendResult(response.status_code, None)
