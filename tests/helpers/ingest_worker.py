"""A worker in a process of its own, for tests that kill it.

    python -m tests.helpers.ingest_worker DATABASE_URL HOME BATCH_ID [BATCH_ID ...]

Works the batches until they are complete, with short leases (``LEDGER_LEASE_SECONDS``,
default 2) so that a restarted worker soon takes over what a killed one held.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from ledger.app import Ledger
from ledger.settings import Settings
from ledger.worker.runtime import Worker


async def main(url: str, home: str, batch_ids: list[str]) -> None:
    settings = Settings(
        database_url=url,
        home=Path(home),
        lease_seconds=float(os.environ.get("LEDGER_LEASE_SECONDS", "2")),
        process_workers=2,
        task_memory_limit_mb=1024,
        task_timeout_seconds=60,
        poll_seconds=0.05,
        commit_interval_seconds=0.01,
        concurrency=4,
        backoff_base_seconds=0.05,
    )
    ledger = await Ledger.open(settings)
    try:
        await Worker(ledger, batch_ids=batch_ids).run(until_complete=True)
    finally:
        await ledger.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
