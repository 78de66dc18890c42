"""SQLAlchemy's aiosqlite dialect, with one trip to the driver's thread per statement.

aiosqlite runs each call on its connection's thread, and SQLAlchemy's adapter makes three
or four calls per statement (create a cursor, execute, fetch the rows, close). Each call
is a hand-off to that thread and back through the event loop, and the hand-offs, not
SQLite, were most of what a claim or a finish cost: a claim of one document took about
4 ms for a few microseconds of SQL. Here a statement's cursor is made, executed, read and
closed in one call on the driver's thread, and only its results come back. A transaction's
BEGIN travels with its first statement, and a transaction that ran none ends without a trip.

A *brief* transaction (the queue's claims, finishes and heartbeats: statements bounded by a
claim's size) runs its statements on the event loop's own thread: a trip cost about 150 us
of CPU (a hand-off to a thread and a wake-up of the loop through its self-pipe) against a
few microseconds for most of these statements, and a default worker's transaction made
eight or nine of them. Nothing can make such a statement wait: the transaction holds
SQLite's one write lock, and in WAL mode readers never block a writer. Taking the lock can
wait (another process writing), so the BEGIN is tried on the loop without waiting and, if
the lock is taken, sent to the driver's thread to wait there. The COMMIT runs on the loop
too when the engine's WAL checkpoints run on a thread of their own and commits do not
fsync (``synchronous=NORMAL``, see ``wal_checkpoint``): it only appends pages to the log.
Otherwise it goes to the driver's thread: it may checkpoint the log into the database file
(measured up to 58 ms with its fsync), or sync it, which must not hold up the loop.

Everything else is SQLAlchemy's own dialect (type handling, errors, pooling, isolation).
Like SQLAlchemy's adapter, this reaches into aiosqlite's queue of calls (``_execute``);
the whole test suite runs through it, so a change there shows at once.
"""

from __future__ import annotations

import collections
import functools
import sqlite3
from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT

DRIVER = "ledger_aiosqlite"


class _Executed:
    """What a statement left behind, read on the driver's thread after it ran."""

    __slots__ = ("arraysize", "description", "lastrowid", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor | None = None) -> None:
        self.description = cursor.description if cursor is not None else None
        self.rowcount = cursor.rowcount if cursor is not None else -1
        self.lastrowid = cursor.lastrowid if cursor is not None else None
        self.arraysize = 1

    def close(self) -> None:
        """The driver's cursor was closed on its thread already."""


def _run(
    raw: sqlite3.Connection, operation: str, parameters: Any, many: bool, begin: str | None
) -> tuple[_Executed, list[Any] | None]:
    cursor = raw.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        rows = cursor.fetchall() if cursor.description else None
        return _Executed(cursor), rows
    finally:
        cursor.close()


def _begin_without_waiting(raw: sqlite3.Connection, begin: str, busy_timeout_ms: int) -> bool:
    """Run ``begin`` at once if the lock it takes is free; False (nothing begun) if not."""
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        raw.execute(begin)
        return True
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return False
        raise
    finally:
        raw.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()
    _awaitable_cursor_close = False  # nothing to close: see _Executed.close

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No driver cursor up front (that was a trip of its own): each statement makes and
        # closes one on the driver's thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = _Executed()  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._one_trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        return await self._one_trip(operation, seq_of_parameters, many=True)

    async def _one_trip(self, operation: Any, parameters: Any, *, many: bool) -> Any:
        adapted: Any = self._adapt_connection
        async with adapted._execute_mutex:
            begin, adapted.deferred_begin = adapted.deferred_begin, None
            connection: Any = self._connection
            raw = connection._conn
            executed: Any  # stands in for the driver's cursor, as SQLAlchemy's adapter expects
            if adapted.brief and (
                begin is None or _begin_without_waiting(raw, begin, adapted.busy_timeout_ms)
            ):
                # On the loop's thread: the transaction holds its lock, nothing can wait.
                executed, rows = _run(raw, operation, parameters, many, None)
            else:  # not brief, or the BEGIN must wait for another process's lock
                executed, rows = await connection._execute(
                    _run, raw, operation, parameters, many, begin
                )
            self._cursor = executed
            if rows is not None:
                self._rows = collections.deque(rows)
            return executed


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("brief", "busy_timeout_ms", "commit_brief_inline", "deferred_begin")
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        # The BEGIN of a transaction that has run no statement yet: it is sent with the
        # first one, in the same trip (a trip costs more than most of the ledger's SQL).
        self.deferred_begin: str | None = None
        # Whether the current transaction is brief (see the module's docstring).
        self.brief = False
        self.busy_timeout_ms = 0  # set with the PRAGMA when the connection is opened
        # Whether a brief transaction's COMMIT runs on the loop's thread: only when the
        # engine's checkpoints run on a thread of their own and commits do not fsync.
        self.commit_brief_inline = False

    def begin_with_next_statement(self, sql: str, *, brief: bool = False) -> None:
        self.deferred_begin = sql
        self.brief = brief

    def commit(self) -> None:
        brief, self.brief = self.brief, False
        if self.deferred_begin is not None:  # nothing ran: there is no transaction to end
            self.deferred_begin = None
            return
        if brief and self.commit_brief_inline:
            # Appends the transaction's pages to the log: no fsync, no checkpoint.
            try:
                self._connection._conn.commit()
            except Exception as error:
                self._handle_exception(error)
            return
        super().commit()

    def rollback(self) -> None:
        self.brief = False
        if self.deferred_begin is not None:
            self.deferred_begin = None
            return
        super().rollback()


# Text that is not UTF-8 (a row written by another program, a file name from an old
# version) is read with its bad bytes kept as lone surrogates instead of failing the whole
# statement: one such row would otherwise fail every claim that returns it, for every
# worker. Whoever reads the row can then tell it apart (it cannot be encoded) and fail that
# document alone. A C-level callable, so the common case stays at C speed.
_lenient_text = functools.partial(str, encoding="utf-8", errors="surrogateescape")


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        raw = getattr(adapted._connection, "_conn", None)
        if isinstance(raw, sqlite3.Connection):
            raw.text_factory = _lenient_text
        return OneTripConnection(self, adapted._connection)


class OneTripSQLiteDialect(SQLiteDialect_aiosqlite):
    driver = DRIVER
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> OneTripDBAPI:
        return OneTripDBAPI(__import__("aiosqlite"), __import__("sqlite3"))


dialect = OneTripSQLiteDialect
