"""From a processor's return value or exception to the :class:`Outcome` the worker records,
and the cleanup of an outcome's files once it is recorded (or given up)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence, Set

from ledger.backpressure import is_throttle
from ledger.errors import LedgerError, ProcessingError
from ledger.model import ClaimedDocument, ErrorInfo, Outcome
from ledger.processors.base import Done, ProcessorOutput, Skip
from ledger.states import ErrorCode

log = logging.getLogger(__name__)

MAX_TRACEBACK = 2_000


def error_info(exc: BaseException) -> ErrorInfo:
    """How a processor's exception is recorded. Unknown exceptions are retried (they may be
    transient) and count towards the circuit breaker (they are often a bug or an outage)."""
    if isinstance(exc, ProcessingError):
        return ErrorInfo(
            code=exc.code,
            message=exc.message,
            retryable=exc.retryable,
            systemic=exc.systemic,
            retry_after=getattr(exc, "retry_after", None),
            throttled=is_throttle(exc),
        )
    if isinstance(exc, LedgerError):
        return ErrorInfo(code="invalid", message=exc.message, retryable=False, systemic=True)
    summary = "".join(traceback.format_exception(exc, limit=-3))[-MAX_TRACEBACK:]
    return ErrorInfo(
        code=ErrorCode.EXCEPTION.value,
        message=f"{type(exc).__name__}: {exc}\n{summary}",
        retryable=True,
        systemic=True,
    )


def clean_up(outcomes: Sequence[Outcome], adopted: Set[int] = frozenset()) -> None:
    """Run each outcome's cleanup, and its discard unless its children were created (the
    removal of the children they replaced if they were)."""
    for outcome in outcomes:
        if outcome.cleanup is None and outcome.discard is None and outcome.replaced is None:
            continue  # most outcomes leave no file behind
        calls = [outcome.cleanup]
        if outcome.document_id not in adopted:
            calls.append(outcome.discard)
        else:
            calls.append(outcome.replaced)
        for call in calls:
            if call is None:
                continue
            try:
                call()
            except Exception as exc:  # a leftover file must not stop the worker
                log.warning("cleanup after document %s failed: %s", outcome.document_id, exc)


def outcome_of(doc: ClaimedDocument, output: ProcessorOutput) -> Outcome:
    if isinstance(output, Done):
        return Outcome.done(
            doc,
            output.result,
            output.index,
            output.cleanup,
            output.children,
            output.discard,
            output.replaced,
        )
    if isinstance(output, Skip):
        return Outcome.skipped(
            doc, {"reason": output.reason, **output.result}, output.index, output.cleanup
        )
    raise TypeError(f"processor returned {type(output).__name__}, not Done or Skip")
