"""The one way to the database: a connection, one transaction, the clock, and retries.

Every service of the ledger (queue, index, uploads, keys) runs its work through a
:class:`Runner`. Nothing that matters is kept in it: any number of runners, in any number
of processes, can share a database, and any of them can die at any moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from ledger.db.backends import Backend, backend_of
from ledger.db.engine import BRIEF, WRITE, create_engine
from ledger.db.models import HEAD_REVISION
from ledger.errors import LedgerError
from ledger.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
Work = Callable[[AsyncConnection, datetime], Awaitable[T]]

TRANSIENT_RETRIES = 5


def _connect_and_begin(engine: Engine, options: dict[str, Any] | None) -> Connection:
    conn = engine.connect()
    try:
        if options is not None:
            conn.execution_options(**options)  # in place: the same Connection
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


def _commit_or_roll_back_and_close(conn: Connection, commit: bool) -> None:
    try:
        if commit:
            conn.commit()
    except BaseException:
        # A COMMIT the database refused may leave its transaction open (SQLite keeps it, and
        # its write lock, after a deferred constraint or a busy COMMIT), and SQLAlchemy counts
        # the transaction as ended: the pool would hand out a connection stuck in it.
        conn.invalidate()
        raise
    finally:
        conn.close()  # rolls back what was not committed; the connection goes back to the pool


async def _end(conn: Connection, *, commit: bool) -> None:
    """Commit (or roll back) and give the connection back, in one trip."""
    try:
        await greenlet_spawn(_commit_or_roll_back_and_close, conn, commit)
    except BaseException:
        if not conn.closed:  # cancelled while the commit waited for the driver's thread
            await asyncio.shield(greenlet_spawn(conn.close))
        raise


class _RolledBack(Exception):
    """Raised to end a transaction whose writes must not be kept."""


class SchemaOutOfDate(LedgerError):
    """The database schema is not at the version this code needs: run `ledger db upgrade`."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _is_transient(exc: DBAPIError) -> bool:
    """Errors after which running the same transaction again is the right thing to do."""
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in ("40001", "40P01"):  # serialization failure, deadlock detected
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database table is locked" in message


class Runner:
    """Transactions on one engine: each :meth:`run` is one committed transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.rng = rng or random.Random()
        self._clock = clock
        self.backend: Backend = backend_of(engine)
        self._database_clock = self.backend.clock()
        # SQLite has one writer at a time. Two connections of this process that both want
        # to write would otherwise meet in SQLite's busy handler, which sleeps (1, 2, 5, 10
        # ... ms) and polls: under a steady claim/complete load most of the time went there.
        # Queueing this process's write transactions here hands the lock over at once;
        # other processes still queue on busy_timeout.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if self.backend.single_writer else None
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        migrate: bool = False,
        clock: Clock | None = None,
        **engine_kwargs: Any,
    ) -> Runner:
        """Connect to the configured database, migrating it first if ``migrate``.

        Without ``migrate`` the schema must already be at the current version.
        """
        if migrate:
            from ledger.db import migrate as migrations

            await migrations.upgrade_async(settings.url)
        engine = create_engine(settings, **engine_kwargs)
        runner = cls(engine, settings, clock=clock)
        try:
            await runner.check_schema()
        except BaseException:
            await engine.dispose()
            raise
        return runner

    async def check_schema(self) -> None:
        """Raise :class:`SchemaOutOfDate` unless the database is at the head revision."""
        head = HEAD_REVISION
        try:
            async with self.engine.connect() as conn:
                current = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar()
        except DBAPIError:
            current = None
        if current != head:
            raise SchemaOutOfDate(
                f"database schema is at {current or 'nothing'}, this version needs {head}: "
                "run `ledger db upgrade`"
            )

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        """One round trip to the database; raises when it cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def now(self, conn: AsyncConnection | None = None) -> datetime:
        """The ledger's clock. Lease expiry is judged by this one clock: the database server's
        on PostgreSQL (workers on many machines agree on it), the local clock on SQLite (only
        processes on the machine that holds the file can write it), or a test's clock."""
        if self._clock is not None:
            return self._clock()
        if conn is not None:
            return await self._database_clock.now(conn)
        return utcnow()

    @asynccontextmanager
    async def transaction(
        self, *, write: bool = True, brief: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """A transaction for composing several service calls; commits when the block ends.

        Prefer the services' methods; this is for callers that must add their own writes to
        the same transaction (a tus upload completing into a batch, for example). ``brief``:
        see :meth:`run`.
        """
        async with contextlib.AsyncExitStack() as stack:
            if write and self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            options = {WRITE: write, BRIEF: brief} if write or brief else None
            # Two trips into SQLAlchemy's synchronous core instead of five (connect, options,
            # begin, commit, close): each trip is a new greenlet and two switches, together
            # most of an empty transaction's cost. The same Connection calls, events and pool.
            sync = await greenlet_spawn(_connect_and_begin, self.engine.sync_engine, options)
            try:
                yield AsyncConnection(self.engine, sync)
            except BaseException:
                await _end(sync, commit=False)
                raise
            await _end(sync, commit=True)

    async def run(
        self,
        work: Work[T],
        *,
        write: bool = True,
        retries: int = TRANSIENT_RETRIES,
        brief: bool = False,
    ) -> T:
        """Run ``work(conn, now)`` in one transaction, again if the database says to retry
        (at most ``retries`` runs in all: 1 for work that cannot be repeated).

        ``brief``: every statement of ``work`` is small (bounded by a claim's size, say), so
        on SQLite it may run on the event loop's thread instead of the driver's, which saves
        a hand-off per statement but holds up every other task of the loop while it runs.
        """
        for attempt in range(retries):
            try:
                async with self.transaction(write=write, brief=brief) as conn:
                    return await work(conn, await self.now(conn))
            except DBAPIError as exc:
                if not _is_transient(exc) or attempt == retries - 1:
                    raise
                log.warning("transient database error, retrying: %s", exc.orig)
                await asyncio.sleep(0.05 * 2**attempt * (1 + self.rng.random()))
        raise AssertionError("unreachable")

    async def read(self, work: Work[T]) -> T:
        """``work`` in a read-only transaction."""
        return await self.run(work, write=False)

    async def rolled_back(self, work: Work[T]) -> T:
        """``work`` in a write transaction that is then rolled back, whatever it did; one
        attempt only (no transparent retry): its sources may be a one-shot iterator."""
        result: list[T] = []
        with contextlib.suppress(_RolledBack):
            async with self.transaction() as conn:
                result.append(await work(conn, await self.now(conn)))
                raise _RolledBack  # leaving the transaction by an exception rolls it back
        return result[0]
