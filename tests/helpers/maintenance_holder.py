"""Holds the maintenance lock until killed: ``python -m tests.helpers.maintenance_holder URL``.

Prints ``held`` once it holds it, then sleeps: the test SIGKILLs it mid-pass.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.app import Ledger
from ledger.settings import Settings


async def main(url: str) -> None:
    led = await Ledger.open(Settings(database_url=url))

    async def transact(work: Callable[[AsyncConnection, datetime], Awaitable[bool]]) -> bool:
        return await led.runner.run(work)

    lease = timedelta(minutes=5)
    async with led.runner.backend.leadership(
        led.engine, transact, owner="holder", lease=lease
    ) as held:
        print("held" if held is not None else "busy", flush=True)
        await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
