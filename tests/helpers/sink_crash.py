"""A sink stage in a process of its own that dies between a store's write and the ledger's
commit: ``python -m tests.helpers.sink_crash DATABASE_URL REPORT_FILE``.

Settings come from LEDGER_* variables (``LEDGER_SINKS``, ``LEDGER_SINK_LEASE_SECONDS``).
Test-only (never in the product): after the store writes of the first round it claims, the
rows' ids and points written are put in REPORT_FILE (with an fsync) and the process
SIGKILLs itself, so the store holds the rows' points while the ledger still has them
pending under a lease.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence

from ledger.app import Ledger
from ledger.index.sink_rows import SinkTask
from ledger.settings import Settings
from ledger.sinks.stage import SinkStage
from ledger.sinks.writer import Outcome


class CrashingStage(SinkStage):
    def __init__(self, ledger: Ledger, report: str) -> None:
        super().__init__(ledger)
        self.report = report

    async def write(self, tasks: Sequence[SinkTask]) -> list[Outcome]:
        outcomes = await super().write(tasks)
        found = {
            "rows": [t.id for t in tasks],
            "points": [o.points for o in outcomes],
            "errors": [o.error.message for o in outcomes if o.error is not None],
        }
        with open(self.report, "w") as file:  # noqa: ASYNC230 (the process dies next)
            json.dump(found, file)
            file.flush()
            os.fsync(file.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
        return outcomes


async def main(url: str, report: str) -> None:
    ledger = await Ledger.open(Settings(database_url=url))
    try:
        await CrashingStage(ledger, report).run_once()
    finally:
        await ledger.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
