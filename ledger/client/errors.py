"""What a ledger server's answer means to a client: one error class per thing a caller can act
on (fix the key, ask for access, check the name, wait, report). Each class's docstring is
its default message; no message or repr ever holds the API key."""

from __future__ import annotations

from ledger.errors import LedgerError


class ClientError(LedgerError):
    """The ledger server did not answer as asked."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when there was an answer
        self.retry_after = retry_after  # seconds the server asked to wait (429, 503)


class Unauthorized(ClientError):
    """The API key is missing, unknown or revoked (401)."""


class Forbidden(ClientError):
    """The API key may not do this (403)."""


class NotFound(ClientError):
    """No such batch or document for this API key (404): missing, or another tenant's."""


class InvalidRequest(ClientError):
    """The server refused the request's parameters (400, 422)."""


class RateLimited(ClientError):
    """Too many requests (429), still after the retries allowed."""


class Unavailable(ClientError):
    """The server, or a service it needs (the query's embedder), is unavailable (503)."""


class ServerError(ClientError):
    """The server failed to answer (5xx)."""


class ConnectionFailed(ClientError):
    """The ledger server could not be reached."""


class StreamBroken(ClientError):
    """The chunk stream kept being cut off without progress; resume from the last chunk."""


BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def for_status(status: int) -> type[ClientError]:
    """The error class of an HTTP error status."""
    if status in BY_STATUS:
        return BY_STATUS[status]
    return ServerError if status >= 500 else ClientError
