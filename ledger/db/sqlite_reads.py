"""Reads of a SQLite ledger for a short-lived command, without SQLAlchemy's asyncio extension.

``ledger status`` runs a handful of SELECTs and exits; most of its time went to imports.
The asyncio extension alone loads the ORM (sessions, mappers, loading strategies) that the
core's Core statements never use. Here the same read functions of the core run on a
synchronous connection of Python's own ``sqlite3`` driver: they ``await conn.execute``,
which on :class:`AwaitableConnection` returns at once, so the coroutine finishes in one
step and needs no event loop (:func:`run_to_end`).

Only reads: the connection is ``query_only``. Writes, migrations and PostgreSQL keep the
asynchronous engine of :mod:`ledger.db.engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import Connection, Executable, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from ledger.db.models import HEAD_REVISION

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")


class AwaitableConnection:
    """A synchronous connection behind the ``await conn.execute(...)`` the core's reads use."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        return self._conn.execute(statement, parameters)


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that awaits nothing but :class:`AwaitableConnection` to its result."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coroutine.close()
    raise RuntimeError("a read awaited something other than its connection")


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL names, or None (another database, memory, a ``file:`` URI)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return None if database.startswith("file:") else database


@contextmanager
def read_transaction(path: str, *, busy_timeout_ms: int) -> Iterator[AsyncConnection | None]:
    """One read transaction on the SQLite file at ``path`` (a consistent snapshot), as the
    connection the core's read functions take; None if the file's schema is not this
    version's (the caller then opens the ledger, which migrates or explains)."""
    engine = create_engine(make_url("sqlite://").set(database=path), poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy says when transactions begin
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    try:
        with engine.connect() as conn, conn.begin():
            yield cast("AsyncConnection", AwaitableConnection(conn)) if _current(conn) else None
    finally:
        engine.dispose()


def _current(conn: Connection) -> bool:
    try:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no such table: a file no ledger has migrated
        return False
    return version == HEAD_REVISION


def read(
    path: str, work: Callable[[AsyncConnection], Coroutine[Any, Any, T]], *, busy_timeout_ms: int
) -> T | None:
    """``work`` run in one read transaction on the file; None if its schema is not current
    or the database refused (the caller's full path then reads again and reports it the
    usual way: reads are safe to repeat)."""
    try:
        with read_transaction(path, busy_timeout_ms=busy_timeout_ms) as conn:
            return None if conn is None else run_to_end(work(conn))
    except DBAPIError:
        return None
