"""Processors that kill their own process on one document, every time (``module:function``).

``kill_async`` runs on the worker's event loop, so it kills the worker itself; ``kill_sync``
is a plain function, which the worker runs in its process pool, so it kills the pool child.
A document is poison when its source contains ``POISON``; every other one succeeds.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ledger.processors.base import Document

POISON = "poison"


def _maybe_die(doc: Document) -> None:
    if POISON in doc.source:
        os.kill(os.getpid(), signal.SIGKILL)


async def kill_async(doc: Document) -> dict[str, object]:
    _maybe_die(doc)
    await asyncio.sleep(0.005)
    return {"pid": os.getpid()}


def kill_sync(doc: Document) -> dict[str, object]:
    _maybe_die(doc)
    return {"pid": os.getpid()}
