"""The HTTP server's connections: uvicorn's h11 protocol with a deadline for request headers.

uvicorn closes an idle keep-alive connection after a few seconds, but any byte that arrives
cancels that timer and a new connection has none: a client that sends its headers a byte at
a time holds a connection, and the file descriptor behind it, for as long as it likes. Here
every request's headers must all be in within ``LEDGER_HEADER_TIMEOUT_SECONDS`` of the
connection opening (or of the previous response on a kept-alive connection), however the
bytes trickle in; otherwise the client is answered 408 and the connection closed. Bodies
are not covered: the routes that stream large bodies bound their own idle time.

``ledger serve`` uses it, and so can plain uvicorn:
``uvicorn --factory ledger.api.app:from_env --http ledger.api.server:HeaderTimeoutProtocol``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from ledger.settings import Settings

log = logging.getLogger(__name__)

_MESSAGE = b"the request headers did not arrive in time\n"
TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_MESSAGE)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _MESSAGE
)


@functools.cache
def _configured_timeout() -> float:
    return Settings().header_timeout_seconds


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's headers."""

    header_timeout: float | None = None  # None: LEDGER_HEADER_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timeout = self.header_timeout or _configured_timeout()
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        # IDLE on their side: the next request's headers are not all in yet. The deadline
        # runs from the start of that wait, not from the last byte.
        if self.conn.their_state is h11.IDLE:
            if self._deadline is None and not self.transport.is_closing():
                self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        waiting = self.conn.their_state is h11.IDLE and self._deadline is None
        if waiting and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self._timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        log.info("closing a connection whose request headers were not in after %gs", self._timeout)
        self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with this deadline (a server given its settings explicitly)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout": seconds})
