"""Every error the API answers, as RFC 9457 problem details (application/problem+json).

One handler maps the ledger's errors, one maps the framework's, one catches the rest: no
request gets an HTML page, a bare string or a stack trace.
"""

from __future__ import annotations

import logging
import math
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from ledger.api.schemas import Problem
from ledger.db.lost_connection import is_lost_connection
from ledger.db.write_failures import driver_reason
from ledger.errors import (
    Conflict,
    Gone,
    InvalidInput,
    LeaseLost,
    LedgerError,
    Locked,
    NotAllowed,
    NotFound,
    PermanentError,
    QuotaExceeded,
    RetryableError,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_LEDGER_STATUS: tuple[tuple[type[LedgerError], int], ...] = (
    (NotFound, 404),
    (Gone, 410),
    (Locked, 423),
    (Conflict, 409),
    (LeaseLost, 409),
    (NotAllowed, 422),
    (InvalidInput, 400),
    (QuotaExceeded, 413),
    # A service the ledger calls (an embedding endpoint for a vector search) failed.
    (RetryableError, 503),
    (PermanentError, 502),
)


def problem(
    request: Request[Any, Any, Any] | None,
    status: int,
    detail: str,
    *,
    title: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    """The problem-details response for ``status``."""
    body = Problem(
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors,
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def ledger_error_handler(request: Request[Any, Any, Any], exc: LedgerError) -> Response[Problem]:
    """The one place that turns the ledger's errors into HTTP answers."""
    for kind, status in _LEDGER_STATUS:
        if isinstance(exc, kind):
            return problem(request, status, exc.message, headers=_retry_after(exc))
    if type(exc).__name__ == "SchemaOutOfDate":
        return problem(request, 503, exc.message)
    log.error("unmapped ledger error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "the ledger failed to do this; the server log has details")


def _validation_errors(extra: Any) -> list[dict[str, Any]] | None:
    if isinstance(extra, list):
        return [e if isinstance(e, dict) else {"message": str(e)} for e in extra]
    if isinstance(extra, dict):
        return [extra]
    return None


def _retry_after(exc: LedgerError) -> dict[str, str] | None:
    """A Retry-After header (whole seconds, at least 1) for an unavailable service."""
    if not isinstance(exc, RetryableError):
        return None
    wait = exc.retry_after if exc.retry_after is not None else 1.0
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    """Framework errors (routing, validation, limits) as problem details."""
    status = exc.status_code
    detail = exc.detail or HTTPStatus(status).phrase
    errors = _validation_errors(exc.extra)
    if isinstance(exc, ValidationException):
        # The body or a parameter did not fit the schema: 422. A body that is not JSON at
        # all (or a parameter that is malformed, not just out of range) stays 400.
        text = " ".join([detail, *(str(e.get("message", "")) for e in errors or [])]).lower()
        malformed = "malformed" in text or ("json" in text and "decode" in text)
        status = 400 if malformed else 422
        detail = _describe_validation(request, errors) or detail
    elif isinstance(exc, RequestEntityTooLarge):
        limit = request.route_handler.resolve_request_max_body_size()
        detail = (
            f"request body is larger than this endpoint accepts ({limit} bytes)"
            if limit
            else "request body is too large"
        )
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "content-type"}
    return problem(request, status, detail, errors=errors, headers=headers or None)


def _describe_validation(
    request: Request[Any, Any, Any], errors: list[dict[str, Any]] | None
) -> str | None:
    if not errors:
        return None
    parts = []
    for e in errors[:5]:
        where = e.get("key") or e.get("source") or "request"
        parts.append(f"{where}: {e.get('message', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def recursion_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Problem]:
    """A JSON body nested deeper than the decoder's recursion limit."""
    return problem(request, 400, "request body is nested too deeply")


def decode_error_handler(
    request: Request[Any, Any, Any], exc: msgspec.DecodeError
) -> Response[Problem]:
    return problem(request, 400, f"request body is not valid: {exc}")


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """Anything unexpected: logged with its traceback, answered without internals. A
    database that went away (a restart, a failover) is not unexpected: 503, try again."""
    if is_lost_connection(exc):
        log.error(
            "%s %s: the database is unreachable (%s)", request.method, request.url.path,
            driver_reason(exc),
        )  # fmt: skip
        return problem(
            request,
            503,
            "the database is not available; try again shortly",
            headers={"Retry-After": "1"},
        )
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, "internal error; the server log has details")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    LedgerError: ledger_error_handler,
    HTTPException: http_error_handler,
    RecursionError: recursion_handler,
    msgspec.DecodeError: decode_error_handler,
    Exception: internal_error_handler,
}


def _problem_spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )


# Documented on every operation: any of these can answer any request (auth, limits...).
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    400: _problem_spec("Bad input: malformed body, parameter or path; the detail says which"),
    401: _problem_spec("Missing, unknown or revoked API key"),
    403: _problem_spec("Not allowed (local single-user mode answers loopback clients only)"),
    404: _problem_spec("No such resource (or it belongs to another tenant)"),
    405: _problem_spec("Method not allowed on this path"),
    409: _problem_spec("Conflicts with the resource's current state"),
    413: _problem_spec("Request body larger than the configured limit"),
    415: _problem_spec("Unsupported content type"),
    422: _problem_spec("Well-formed input that fails validation"),
    429: _problem_spec("Too many requests from this client; retry later"),
    500: _problem_spec("Internal error"),
    501: _problem_spec("Not available in this version"),
    503: _problem_spec("The database is not available"),
}
