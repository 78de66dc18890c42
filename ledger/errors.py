"""The ledger's error hierarchy. Each class's docstring is its default message."""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """The ledger could not do what was asked."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__class__.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickling calls ``cls(*self.args)``, which breaks for subclasses whose
        # constructor takes other arguments than the message (``ProcessingError(code, ...)``).
        # Rebuild without calling ``__init__``: the args and the attributes are restored as
        # they were, so an error raised in a worker process arrives intact in its parent.
        return (_restore_error, (self.__class__, self.args, dict(self.__dict__)))


def _restore_error(
    cls: type[LedgerError], args: tuple[Any, ...], state: dict[str, Any]
) -> LedgerError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class NotFound(LedgerError):
    """No such resource."""


class Conflict(LedgerError):
    """The request conflicts with the current state of the resource."""


class InvalidInput(LedgerError):
    """The input is not valid."""


class NotAllowed(InvalidInput):
    """The request asks for something the server does not allow its callers."""


class Gone(LedgerError):
    """The resource existed but is no longer available (an expired upload, for example)."""


class QuotaExceeded(LedgerError):
    """This would take the tenant past one of its limits."""


class Locked(Conflict):
    """Someone else is changing this resource right now; retry shortly."""


class DatabaseWriteFailed(LedgerError):
    """The database cannot be written (is its disk full?)."""


class LeaseLost(LedgerError):
    """The lease on this document is no longer held by this worker."""


class ProcessingError(LedgerError):
    """Raised by a processor to say how one document failed.

    ``code`` is a short stable identifier (``source_missing``, ``corrupt``, ``http_503``...)
    that users group failures by; ``message`` names the cause in words.
    """

    retryable: bool = False

    def __init__(self, code: str, message: str | None = None, *, systemic: bool = False) -> None:
        super().__init__(message or code)
        self.code = code
        # A systemic error says "the world is broken", not "this document is broken":
        # it counts towards the batch's circuit breaker even when it is permanent.
        self.systemic = systemic


class RetryableError(ProcessingError):
    """A transient failure: try this document again later (with backoff)."""

    retryable = True

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        systemic: bool = True,
    ) -> None:
        super().__init__(code, message, systemic=systemic)
        # Seconds the remote side asked us to wait (HTTP Retry-After); a floor for the backoff.
        self.retry_after = retry_after


class PermanentError(ProcessingError):
    """This document cannot be processed; retrying will not help."""


class ServiceUnavailable(RetryableError):
    """A service the ledger calls for this request kept failing or throttling until the
    request's deadline; try again after ``retry_after`` seconds."""
