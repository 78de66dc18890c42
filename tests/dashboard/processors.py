"""Processors the dashboard tests allow by name (``LEDGER_PROCESSORS``): one that crashes
with a traceback, one that skips with a reason, one that waits until its document is released."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ledger.processors.base import Document, Skip

# One unbroken word longer than any screen is wide: it must wrap, not widen the page.
LONG_WORD = "unbroken" * 80
RELEASE = ".release"  # ``gated`` finishes a document once its source + this suffix exists


def _deep(level: int) -> None:
    if level == 0:
        raise ValueError(f"the document could not be parsed: {LONG_WORD}")
    _deep(level - 1)


async def crashes(doc: Document) -> dict[str, object]:
    _deep(4)
    return {}


async def skips(doc: Document) -> Skip:
    return Skip(f"nothing to do for {Path(doc.source).name}")


async def gated(doc: Document) -> dict[str, object]:
    release = Path(doc.source + RELEASE)
    for _ in range(1200):  # a minute at most, so a failed test never hangs a worker
        if await asyncio.to_thread(release.exists):
            return {}
        await asyncio.sleep(0.05)
    raise TimeoutError("never released")
