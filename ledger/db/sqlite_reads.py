"""Reads of a SQLite ledger for a short-lived command, on Python's own ``sqlite3`` driver.

``ledger status`` runs a handful of SELECTs and exits; most of its time went to imports, and
SQLAlchemy was the largest. Here the status statements (plain SQL text, the same the ledger
runs through SQLAlchemy: ``ledger.queue.status_reads``) run on a ``sqlite3`` connection.
The read functions ``await rows(...)``, which on :class:`SqliteRows` returns at once, so a
coroutine finishes in one step and needs no event loop (:func:`run_to_end`).

Only reads: the connection is ``query_only``. Writes, migrations and PostgreSQL keep the
asynchronous engine of :mod:`ledger.db.engine`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ledger.database_url import plain_sqlite_file

if TYPE_CHECKING:
    from ledger.queue.status_reads import Rows

T = TypeVar("T")

# ledger/db/models.py names the schema revision this code reads; importing it would load
# SQLAlchemy and every table, so its one line is read from the module's source instead.
_HEAD_LINE = re.compile(r'^HEAD_REVISION = "([^"]+)"$', re.MULTILINE)


def sqlite_timestamp(value: datetime) -> str:
    """How a UTC timestamp is stored on SQLite: one fixed-width text format (always
    microseconds), so that text order is time order. Naive datetimes are refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


@cache
def head_revision() -> str | None:
    """``ledger.db.models.HEAD_REVISION``, read without importing the module; None if its
    source cannot be read (the caller then takes the full path, which imports it)."""
    spec = find_spec("ledger.db.models")
    if spec is None or spec.origin is None:
        return None
    try:
        found = _HEAD_LINE.search(Path(spec.origin).read_text(encoding="utf-8"))
    except OSError:
        return None
    return found.group(1) if found else None


class SqliteRows:
    """A ``sqlite3`` connection behind the ``await db.rows(...)`` the status reads use."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def rows(self, sql: str, params: Mapping[str, Any]) -> Sequence[Any]:
        bound = {k: _bindable(v) for k, v in params.items()}
        return self._conn.execute(sql, bound).fetchall()


def _bindable(value: Any) -> Any:
    # As the ledger's UTC column type binds a timestamp on SQLite (ledger.db.types).
    return sqlite_timestamp(value) if isinstance(value, datetime) else value


def run_to_end(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that awaits nothing but :class:`SqliteRows` to its result."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return cast(T, stop.value)
    coroutine.close()
    raise RuntimeError("a read awaited something other than its connection")


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL names, or None: another database, memory, a ``file:`` URI, or
    a URL this plain reading leaves to the full path (one with a query or escapes)."""
    return plain_sqlite_file(url)


def _current(conn: sqlite3.Connection, head: str) -> bool:
    try:
        found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: a file no ledger has migrated
        return False
    return found is not None and found[0] == head


def read(
    path: str, work: Callable[[Rows], Coroutine[Any, Any, T]], *, busy_timeout_ms: int
) -> T | None:
    """``work`` run in one read transaction on the file (a consistent snapshot); None if
    its schema is not this version's or the database refused (the caller's full path then
    reads again, migrates or explains: reads are safe to repeat)."""
    head = head_revision()
    if head is None:
        return None
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA query_only = ON")
            conn.execute("BEGIN")
            return run_to_end(work(SqliteRows(conn))) if _current(conn, head) else None
        finally:
            conn.close()  # ends the read transaction
    except sqlite3.Error:
        return None
