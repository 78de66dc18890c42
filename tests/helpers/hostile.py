"""Processors that try to stop the process running them, for the worker-boundary tests.

The operator allows them by name (``LEDGER_PROCESSORS``); each must fail only its document.
"""

from __future__ import annotations

import sys
from typing import Any


def exits(doc: Any) -> dict[str, Any]:
    """Sync and picklable: runs in the process pool."""
    sys.exit(3)


def interrupts(doc: Any) -> dict[str, Any]:
    raise KeyboardInterrupt


def raises_base(doc: Any) -> dict[str, Any]:
    raise BaseException("not an Exception")


async def exits_on_the_loop(doc: Any) -> dict[str, Any]:
    raise SystemExit("from a coroutine")


def _in_thread() -> Any:
    # A function defined in a function cannot be sent to another process: it runs in a thread.
    def exits_in_thread(doc: Any) -> dict[str, Any]:
        raise SystemExit(4)

    return exits_in_thread


exits_in_thread = _in_thread()


def fine(doc: Any) -> dict[str, Any]:
    return {"fine": True}
