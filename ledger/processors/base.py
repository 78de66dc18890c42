"""The processor contract: what a processor is given and what it returns.

Names are turned into processors by :mod:`ledger.processors.registry`.

A processor is what the ledger runs on each document. Users write plain functions::

    def my_processor(doc: Document) -> dict: ...          # sync: runs in the process pool
    async def my_processor(doc: Document) -> dict: ...    # async: runs on the event loop

and name them ``module:function`` (or register an entry point in the ``ledger.processors``
group). The returned dict is stored as the document's result. Raise
:class:`ledger.errors.RetryableError` for a transient failure,
:class:`ledger.backpressure.Throttled` when a service asked to slow down (rescheduled after
its wait, no attempt charged), or :class:`ledger.errors.PermanentError` when the document
itself is the problem; any other exception is recorded as that document's failure with its
type and message.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ledger.errors import InvalidInput, PermanentError
from ledger.records import JSON, ChildFile, ClaimedDocument, Cleanup, TransactionalWrite
from ledger.states import ErrorCode

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.worker.pool import ProcessPool

# What a processor is given: the leased document with its batch's processor options.
Document = ClaimedDocument

ENTRY_POINT_GROUP = "ledger.processors"


@dataclass(frozen=True)
class Done:
    """The document was processed. ``write`` runs in the transaction that marks it done;
    ``cleanup`` runs once that transaction is over (or the outcome is dropped)."""

    result: JSON
    write: TransactionalWrite | None = None
    cleanup: Cleanup | None = None
    # The document's members (an archive's files, an email's attachments), extracted before
    # it returns: the same transaction makes them child documents (see ChildFile).
    # ``discard`` removes their files when that transaction does not commit.
    children: tuple[ChildFile, ...] | None = None
    discard: Cleanup | None = None


@dataclass(frozen=True)
class Skip:
    """Nothing to do for this document (for example: the same content was already indexed)."""

    reason: str
    result: JSON = field(default_factory=dict)
    write: TransactionalWrite | None = None
    cleanup: Cleanup | None = None


ProcessorOutput = Done | Skip


class Processor(Protocol):
    """What the worker runtime calls for each document."""

    def __call__(self, doc: Document) -> Awaitable[ProcessorOutput]: ...


@dataclass
class ProcessorContext:
    """What a processor factory may use: the ledger (for reads and transactional writes),
    the process pool for CPU-bound work, and per-task limits."""

    ledger: Ledger
    pool: ProcessPool | None
    task_timeout: float


Factory = Callable[[ProcessorContext, JSON], Processor]

# An object named by ``module:function`` (or an entry point) that has this attribute is a
# factory, not a plain function: the registry calls ``obj.__ledger_factory__(context,
# options)`` to build the processor (see ``ledger.processors.ingest.with_extracted_text``).
FACTORY_ATTRIBUTE = "__ledger_factory__"


def from_object(context: ProcessorContext, obj: Any, options: JSON) -> Processor:
    factory = getattr(obj, FACTORY_ATTRIBUTE, None)
    if factory is not None:
        return factory(context, options)  # type: ignore[no-any-return]
    return wrap_callable(context, obj)


def _as_output(value: Any) -> ProcessorOutput:
    if isinstance(value, Done | Skip):
        return value
    if value is None:
        return Done({})
    if isinstance(value, dict):
        return Done(value)
    raise TypeError(
        f"a processor must return a dict, None, Done or Skip, not {type(value).__name__}"
    )


def wrap_callable(context: ProcessorContext, fn: Callable[..., Any]) -> Processor:
    """Adapt a user function to the runtime's contract.

    Async functions run on the event loop. Sync functions are CPU work: they run in the
    process pool (so both cores work and a hang or a memory blow-up is contained), or in a
    thread when there is no pool or the function cannot be sent to another process.
    """
    if inspect.iscoroutinefunction(fn):

        async def run_async(doc: Document) -> ProcessorOutput:
            return _as_output(await fn(doc))

        return run_async

    picklable = getattr(fn, "__module__", None) not in (None, "__main__") and (
        "<locals>" not in getattr(fn, "__qualname__", "<locals>")
    )

    async def run_sync(doc: Document) -> ProcessorOutput:
        pool = context.pool  # read per call: the worker may replace its pool between runs
        if pool is not None and picklable:
            value = await pool.run(fn, doc, timeout=context.task_timeout)
        else:
            value = await asyncio.to_thread(fn, doc)
        return _as_output(value)

    return run_sync


def load_object(spec: str) -> Any:
    """Import ``module:attribute`` (attribute may be dotted)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidInput(f"processor {spec!r} is not of the form module:function")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"processor {spec!r}: cannot import {module_name}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise InvalidInput(f"processor {spec!r}: {module_name} has no {attr}") from exc
    if not callable(obj):
        raise InvalidInput(f"processor {spec!r} is not callable")
    return obj


def processor_exit(exc: BaseException) -> PermanentError:
    """The document failure for a processor that raised ``SystemExit``,
    ``KeyboardInterrupt`` or another ``BaseException`` that is not an ``Exception``."""
    detail = str(exc)
    return PermanentError(
        ErrorCode.PROCESSOR_EXIT,
        f"the processor raised {type(exc).__name__}" + (f": {detail[:500]}" if detail else ""),
    )


def partial_processor(fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """A picklable processor with options bound (for user factories)."""
    return functools.partial(fn, **options)
