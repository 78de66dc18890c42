"""Live progress of a batch as Server-Sent Events, read from the ledger's event log.

Two kinds of SSE events are sent:

* one per row of the ``events`` table (``document_done``, ``document_failed``,
  ``batch_paused``...), with ``id:`` set to the row's id. Rows are read in the order they
  became visible (on PostgreSQL not always id order: ids are drawn before commit) after
  the client's ``Last-Event-ID`` (or ``?after=``), so a client that reconnects gets every
  event it missed, none twice;
* ``progress`` snapshots (counts, rate, ETA), without an ``id:``, so they never move the
  client's last event id: they are a view of the moment, not part of the log.

The stream ends with an ``end`` event once the batch is complete and every event before its
completion was sent, or with ``end`` ``{"reason": "revoked"}`` within a few seconds of the
caller's API key being revoked, or with ``end`` ``{"reason": "deleted"}`` once the batch is
deleted. One API key has at most ``LEDGER_MAX_SSE_STREAMS_PER_KEY`` streams open at once
(429 beyond). A batch that is reopened later (retry, more documents)
can be watched again by reconnecting with the last id. While idle, a comment line keeps
proxies from closing the connection.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Request, get
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from ledger.api.auth import Caller, still_allowed
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.schemas import BatchId, ProgressOut
from ledger.api.streams import StreamQuota
from ledger.app import Ledger
from ledger.errors import NotFound
from ledger.settings import Settings

PAGE = 500  # events read per query: bounded memory however far behind the client is
PROGRESS_EVERY = 5.0  # seconds between progress snapshots when nothing happens
KEEPALIVE_EVERY = 15.0
RETRY_MS = 2000  # what the client's EventSource waits before reconnecting
RECHECK_EVERY = 2.0  # seconds between checks that the caller's key is still valid
MAX_EVENT_ID = 2**63 - 1  # event ids are signed 64-bit integers
_EVENT_ID = re.compile(r"[0-9]{1,19}")


def _start_after(last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not _EVENT_ID.fullmatch(text) or int(text) > MAX_EVENT_ID:
            raise ClientException(
                f"Last-Event-ID must be an event id: an integer from 0 to {MAX_EVENT_ID}"
            )
        return int(text)
    return after or 0


async def event_stream(
    ledger: Ledger,
    batch_id: str,
    owner: str | None,
    after: int,
    poll_seconds: float,
    allowed: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[ServerSentEventMessage]:
    """The SSE messages for one batch, from the event after ``after`` on. ``allowed`` is
    asked every few seconds whether the caller may still read; when not, the stream ends."""
    yield ServerSentEventMessage(data=None, comment="ledger events", retry=RETRY_MS)
    last_progress = 0.0
    last_sent = last_check = time.monotonic()
    while True:
        if allowed is not None and time.monotonic() - last_check >= RECHECK_EVERY:
            last_check = time.monotonic()
            if not await allowed():
                yield ServerSentEventMessage(event="end", data='{"reason": "revoked"}')
                return
        # Completion is read before the log is drained: every event committed before the
        # batch completed is then certainly sent before the stream ends.
        before = await ledger.reads.progress(batch_id, owner=owner)
        complete = before.batch.completed_at is not None and before.batch.complete
        sent = 0
        while True:
            page = await ledger.reads.events(batch_id, owner=owner, after_id=after, limit=PAGE)
            for event in page:
                yield ServerSentEventMessage(
                    id=event.id,
                    event=event.kind,
                    data=msgspec.json.encode(event.public()).decode(),
                )
                after = event.id
            sent += len(page)
            if len(page) < PAGE:
                break
        now = time.monotonic()
        if sent or complete or now - last_progress >= PROGRESS_EVERY:
            current = await ledger.reads.progress(batch_id, owner=owner) if sent else before
            yield ServerSentEventMessage(
                event="progress",
                data=msgspec.json.encode(ProgressOut.from_progress(current)).decode(),
            )
            last_progress = last_sent = now
        if complete and not await ledger.reads.has_events_after(
            batch_id, owner=owner, after_id=after
        ):
            yield ServerSentEventMessage(event="end", data='{"reason": "complete"}')
            return
        if now - last_sent >= KEEPALIVE_EVERY:
            yield ServerSentEventMessage(data=None, comment="keep-alive")
            last_sent = now
        await anyio.sleep(poll_seconds)


async def until_deleted(
    stream: AsyncIterator[ServerSentEventMessage],
) -> AsyncIterator[ServerSentEventMessage]:
    """``stream``, ended with ``end`` ``{"reason": "deleted"}`` when its batch is deleted
    while it is followed (instead of breaking off mid-response)."""
    try:
        async for message in stream:
            yield message
    except NotFound:
        yield ServerSentEventMessage(event="end", data='{"reason": "deleted"}')


@get(
    "/batches/{batch_id:str}/events",
    operation_id="streamBatchEvents",
    responses=ERROR_RESPONSES,
    tags=["batches"],
    summary="Live events of a batch (Server-Sent Events)",
    description=__doc__,
)
async def batch_events(
    request: Request[Any, Any, Any],
    batch_id: BatchId,
    ledger: Ledger,
    settings: Settings,
    caller: Caller,
    owner: str | None,
    last_event_id: Annotated[
        str | None,
        Parameter(header="Last-Event-ID", max_length=30, description="resume after this id"),
    ] = None,
    after: Annotated[
        int | None,
        Parameter(ge=0, le=2**63 - 1, description="resume after this id (when no header)"),
    ] = None,
) -> ServerSentEvent:
    start = _start_after(last_event_id, after)
    await ledger.reads.batch(batch_id, owner=owner)  # a 404 now, not an empty stream
    state = request.app.state

    async def allowed() -> bool:
        return await still_allowed(state, caller)

    stream = until_deleted(
        event_stream(ledger, batch_id, owner, start, settings.sse_poll_seconds, allowed)
    )
    if caller.key_id is not None:
        quota: StreamQuota = state.stream_quota
        return ServerSentEvent(quota.hold(caller.key_id, stream))
    return ServerSentEvent(stream)
