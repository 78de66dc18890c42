"""The ledger as its faces see it: one database runner and the services over it.

``ledger.queue`` (submit, claim, finish, rescue), ``ledger.control`` (pause, resume,
cancel, retry, edit, retire, delete), ``ledger.reads`` (batches, documents, events,
figures), ``ledger.workers``, ``ledger.index`` (chunks, search, vectors, plan),
``ledger.uploads`` and ``ledger.keys``. Each service method is one committed transaction
(or one read). Nothing that matters is kept in this object: any number of them, in any
number of processes, can share a database, and any of them can die at any moment.
"""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.access.service import Keys
from ledger.db.runner import Clock, Runner
from ledger.index.service import Index
from ledger.queue.batch_service import Control
from ledger.queue.read_service import Reads, Workers
from ledger.queue.service import Queue
from ledger.settings import Settings
from ledger.uploads.service import Uploads


class Ledger:
    """The services of one database, sharing one runner."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.runner = Runner(engine, settings, clock=clock, rng=rng)
        self.engine = engine
        self.settings = settings
        self.queue = Queue(self.runner)
        self.control = Control(self.runner)
        self.reads = Reads(self.runner)
        self.workers = Workers(self.runner)
        self.index = Index(self.runner)
        self.uploads = Uploads(self.runner)
        self.keys = Keys(self.runner)
        # Code outside these domains (webhooks, the sink stage, maintenance) runs its own
        # transactions on ``self.runner``.
        self.ping = self.runner.ping
        self.check_schema = self.runner.check_schema

    @classmethod
    async def open(
        cls,
        settings: Settings | None = None,
        *,
        migrate: bool = False,
        clock: Clock | None = None,
        **engine_kwargs: Any,
    ) -> Ledger:
        """Connect to the configured database, migrating it first if ``migrate``.

        Without ``migrate`` the schema must already be at the current version.
        """
        settings = settings or Settings()
        runner = await Runner.open(settings, migrate=migrate, clock=clock, **engine_kwargs)
        return cls(runner.engine, settings, clock=clock)

    async def close(self) -> None:
        await self.runner.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
