"""The worker runtime and processor registry, as the command line uses them."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from ledger.cli.app import EXIT_USAGE, CliError
from ledger.core.ledger import Ledger


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise CliError(f"this installation has no worker runtime ({name})") from exc


def check_processor(name: str) -> None:
    """Fail with a usage error unless the registry can resolve ``name``."""
    base = _module("ledger.processors.base")
    registry = base.ProcessorRegistry()
    try:
        registry.resolve(name)
    except Exception as exc:  # whatever the registry raises, the user gets one line
        raise CliError(f"unknown processor {name!r}: {exc}", EXIT_USAGE) from exc


def make_worker(
    ledger: Ledger, *, concurrency: int | None, batch_ids: Sequence[str] | None = None
) -> Any:
    """A worker of the runtime, bound to ``ledger``."""
    runtime = _module("ledger.worker.runtime")
    return runtime.Worker(ledger, concurrency=concurrency, batch_ids=batch_ids)
