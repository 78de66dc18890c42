"""A worker process for tests: ``python -m tests.helpers.worker_proc DB_URL [BATCH...]``.

Settings come from LEDGER_* variables, like a real deployment. Runs until the named batches
are complete (or, with none named, until nothing is due), then prints its stats as JSON.
The worker gets a process pool (children start on first use), as ``ledger worker`` does.

Test-only hooks (never in the product), for deterministic crashes:

- ``LEDGER_TEST_KILL_AT_COMMIT=N`` makes the process SIGKILL itself at its N-th call that
  records outcomes (``ledger.queue.complete``); ``LEDGER_TEST_KILL_WHEN`` says ``after`` (the
  default: right after that transaction committed) or ``before`` (with the outcomes computed
  but not yet written).
- ``LEDGER_TEST_KILL_REPORT=FILE``: before dying, the ids of the documents in that call are
  written to FILE as JSON (with an fsync), so the test knows exactly what was in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from ledger.app import Ledger
from ledger.model import CompleteResult, Outcome
from ledger.settings import Settings
from ledger.worker.pool import ProcessPool
from ledger.worker.runtime import Worker


def _die(report: str | None, ids: list[int], when: str) -> None:
    if report:
        with open(report, "w") as file:
            json.dump({"pid": os.getpid(), "when": when, "ids": ids}, file)
            file.flush()
            os.fsync(file.fileno())
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill_hook(ledger: Ledger) -> None:
    """Wrap this process' ``ledger.complete`` to SIGKILL the process at the N-th call."""
    at = int(os.environ.get("LEDGER_TEST_KILL_AT_COMMIT", "0"))
    if at <= 0:
        return
    when = os.environ.get("LEDGER_TEST_KILL_WHEN", "after")
    if when not in ("before", "after"):
        raise SystemExit(f"LEDGER_TEST_KILL_WHEN must be before or after, not {when!r}")
    report = os.environ.get("LEDGER_TEST_KILL_REPORT")
    real_complete = ledger.queue.complete
    calls = 0

    async def complete(worker_id: str, outcomes: Sequence[Outcome], **claim: Any) -> CompleteResult:
        nonlocal calls
        calls += 1
        ids = [o.document_id for o in outcomes]
        if calls == at and when == "before":
            _die(report, ids, when)
        result = await real_complete(worker_id, outcomes, **claim)
        if calls == at:
            _die(report, ids, when)
        return result

    ledger.queue.complete = complete  # type: ignore[method-assign]


async def main(url: str, batch_ids: list[str]) -> None:
    settings = Settings(database_url=url)
    async with await Ledger.open(settings) as ledger:
        install_kill_hook(ledger)
        async with ProcessPool(
            settings.process_workers, memory_limit_bytes=settings.task_memory_limit_mb * 2**20
        ) as pool:
            worker = Worker(ledger, batch_ids=batch_ids or None, pool=pool)
            worker.install_signal_handlers()
            stats = await worker.run(burst=not batch_ids, until_complete=bool(batch_ids))
    print(json.dumps({"pid": os.getpid(), **{k: v for k, v in vars(stats).items()}}))


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LEDGER_TEST_LOG", "WARNING"))
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
