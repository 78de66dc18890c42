"""A worker process for tests: ``python -m tests.helpers.worker_proc DB_URL [BATCH...]``.

Settings come from LEDGER_* variables, like a real deployment. Runs until the named batches
are complete (or, with none named, until nothing is due), then prints its stats as JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from ledger.core.ledger import Ledger
from ledger.settings import Settings
from ledger.worker.runtime import Worker


async def main(url: str, batch_ids: list[str]) -> None:
    settings = Settings(database_url=url)
    async with await Ledger.open(settings) as ledger:
        worker = Worker(ledger, batch_ids=batch_ids or None)
        worker.install_signal_handlers()
        stats = await worker.run(burst=not batch_ids, until_complete=bool(batch_ids))
    print(json.dumps({"pid": os.getpid(), **{k: v for k, v in vars(stats).items()}}))


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("LEDGER_TEST_LOG", "WARNING"))
    asyncio.run(main(sys.argv[1], sys.argv[2:]))
