"""Built-in processors: ``noop`` and ``sleep`` (for tests and benchmarks), ``ingest`` (real)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ledger.errors import InvalidInput, PermanentError, RetryableError
from ledger.model import JSON, BatchSpec, UnchangedSkip
from ledger.processors.base import Document, Done, Factory, Processor, ProcessorContext

if TYPE_CHECKING:
    from ledger.embedders.base import EmbedderSpec
    from ledger.sinks.base import SinkProfile

_EMPTY: JSON = {}


def make_noop(context: ProcessorContext, options: JSON) -> Processor:
    """Does nothing and succeeds: measures the ledger's own overhead."""

    async def noop(doc: Document) -> Done:
        return Done(_EMPTY)

    return noop


def _number(options: JSON, key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidInput(f"option {key} must be a number from {low} to {high}")
    return float(value)


_SLEEP_OPTIONS = {"seconds", "failure_rate", "permanent_rate", "seed"}


def _sleep_options(options: JSON) -> tuple[float, float, float]:
    seed = options.get("seed")
    if seed is not None and (not isinstance(seed, int | float | str) or isinstance(seed, bool)):
        raise InvalidInput("option seed must be an integer or a string")
    return (
        _number(options, "seconds", 0.05, 0.0, 3600.0),
        _number(options, "failure_rate", 0.0, 0.0, 1.0),
        _number(options, "permanent_rate", 0.0, 0.0, 1.0),
    )


def make_sleep(context: ProcessorContext, options: JSON) -> Processor:
    """Waits ``seconds`` per document; fails with probability ``failure_rate``
    (retryable) or ``permanent_rate`` (permanent). Models I/O-bound work such as a remote API."""
    seconds, failure_rate, permanent_rate = _sleep_options(options)
    rng = random.Random(options.get("seed"))

    async def sleep(doc: Document) -> Done:
        await asyncio.sleep(seconds)
        draw = rng.random()
        if draw < permanent_rate:
            raise PermanentError("sleep_permanent", f"simulated permanent failure of {doc.source}")
        if draw < permanent_rate + failure_rate:
            raise RetryableError(
                "sleep_transient", f"simulated transient failure of {doc.source}", systemic=False
            )
        return Done({"slept": seconds})

    return sleep


def make_ingest(context: ProcessorContext, options: JSON) -> Processor:
    """The document pipeline: read, detect, extract, chunk and index (loaded on first use)."""
    from ledger.processors.ingest.processor import make_ingest_processor

    return make_ingest_processor(context, options)


def check_builtin_options(
    processor: str,
    options: JSON,
    embedders: Mapping[str, EmbedderSpec | None] | None = None,
    sinks: Mapping[str, SinkProfile] | None = None,
) -> None:
    """Raise :class:`InvalidInput` now if a built-in processor's options are invalid, so a
    batch is refused at create instead of failing on every document. Other processors'
    options are theirs to check."""
    if processor == "sleep":
        unknown = set(options) - _SLEEP_OPTIONS
        if unknown:
            raise InvalidInput(
                f"unknown sleep options: {', '.join(sorted(unknown))}; known: "
                + ", ".join(sorted(_SLEEP_OPTIONS))
            )
        _sleep_options(options)
    elif processor == "ingest":
        from ledger.processors.ingest.config import IngestConfig

        IngestConfig.from_options(options, embedders=embedders, sinks=sinks)


def unchanged_skip(
    spec: BatchSpec, embedders: Mapping[str, EmbedderSpec | None] | None = None
) -> UnchangedSkip | None:
    """What a batch's processor lets ``submit`` skip at once: ``ingest`` skips sources it
    has already indexed, unchanged (its first dedup check, made set-based before any worker
    runs), unless its options say ``reprocess``; other processors skip nothing. Options
    that do not validate skip nothing here: the worker reports them on each document."""
    if spec.processor != "ingest":
        return None
    from ledger.processors.ingest.config import IngestConfig

    try:
        config = IngestConfig.from_options(spec.options, embedders=embedders)
    except InvalidInput:
        return None
    if config.reprocess or config.sinks:
        return None  # a batch with sinks processes every source: see the ingest processor
    return UnchangedSkip(model=config.embedder.model if config.embedder is not None else None)


BUILTINS: dict[str, Factory] = {"noop": make_noop, "sleep": make_sleep, "ingest": make_ingest}
