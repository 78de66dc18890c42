"""The hot statements on SQLite, sent to the driver without SQLAlchemy's execution machinery.

A claim or a finish on SQLite is a handful of small statements, and SQLAlchemy's work around
each (a greenlet switch each way, the execution context, the parameters processed through a
dict, the result's metadata and row objects) cost about 70 us of the event loop's time per
statement: a fifth of a default worker's time on ``noop``, more than SQLite took to run
them. Here a statement built once (:func:`ledger.db.prepared.prepared`) is compiled once
by SQLAlchemy itself, for the connection's dialect, and each execution binds its values
with the compiled form's own type processors, runs through the ledger's SQLite driver
(``sqlite_driver``: the same deferred BEGIN, brief or not, the same trip to the driver's
thread or none) and reads the rows with the compiled form's result processors.

The statement text, the values sent and the values read are what SQLAlchemy's own path
sends and reads (``tests/core/test_direct_execution.py`` compares the two for every hot
statement); listeners of ``before_cursor_execute``/``after_cursor_execute`` are told as
they would be, and driver errors are raised as SQLAlchemy's. Anything else (PostgreSQL,
statements with expanding or Python-side defaults) goes through ``conn.execute``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.sqlite_driver import OneTripConnection


@dataclass(frozen=True, slots=True)
class _Compiled:
    statement: Any  # kept alive with its compiled form: the cache is keyed by its id
    compiled: Any
    sql: str
    positions: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]
    row: Any  # a named tuple class of the result's columns, or None
    readers: tuple[Callable[[Any], Any] | None, ...]


class Rows:
    """What a statement returned: the few parts of a SQLAlchemy result the queue uses."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None


_COMPILED: dict[tuple[str, int], _Compiled | None] = {}


def _row_class(names: list[str]) -> Any:
    """Rows by position and by name, as SQLAlchemy's rows are, at a tuple's cost."""
    return collections.namedtuple("Row", names, rename=True)


def _compile(conn: AsyncConnection, statement: Any) -> _Compiled | None:
    """The statement's compiled form, or None when it needs SQLAlchemy's own path."""
    dialect = conn.dialect
    compiled: Any = statement.compile(dialect=dialect)
    if (
        not compiled.positional
        or compiled.literal_execute_params
        or compiled.post_compile_params
        or compiled.escaped_bind_names
        or getattr(compiled, "insert_prefetch", None)
        or getattr(compiled, "update_prefetch", None)
    ):
        return None
    columns = compiled._result_columns
    row: Any = None
    readers: tuple[Callable[[Any], Any] | None, ...] = ()
    if columns:
        row = _row_class([c[0] for c in columns])
        readers = tuple(c[3]._cached_result_processor(dialect, None) for c in columns)
    return _Compiled(
        statement=statement,
        compiled=compiled,
        sql=compiled.string,
        positions=tuple(compiled.positiontup),
        processors=compiled._bind_processors,
        row=row,
        readers=readers,
    )


async def execute(conn: AsyncConnection, statement: Any, params: Mapping[str, Any]) -> Any:
    """Run a prepared ``statement`` with ``params``; a :class:`Rows` (or, where this path
    does not apply, SQLAlchemy's result, which answers the same calls).

    Only for statements built once and kept (``prepared``): the compiled form is kept per
    statement object for the life of the process."""
    sync = conn.sync_connection
    driver = sync.connection.dbapi_connection if sync is not None else None
    if not isinstance(driver, OneTripConnection):
        return await conn.execute(statement, params)
    key = (conn.dialect.name, id(statement))
    try:
        form = _COMPILED[key]
    except KeyError:
        form = _COMPILED[key] = _compile(conn, statement)
    if form is None:
        return await conn.execute(statement, params)
    values = form.compiled.construct_params(params, escape_names=False)
    processors = form.processors
    bound = tuple(
        processors[name](values[name]) if name in processors else values[name]
        for name in form.positions
    )
    assert sync is not None
    listened = sync._has_events or sync.engine._has_events
    if listened:
        sync.dispatch.before_cursor_execute(sync, None, form.sql, bound, None, False)
    cursor: Any = driver.cursor()
    try:
        await cursor._one_trip(form.sql, bound, many=False)
    except Exception as error:
        try:
            driver._handle_exception(error)  # the driver's error as SQLAlchemy's adapter has it
        except Exception as adapted:
            raise DBAPIError.instance(
                form.sql, bound, adapted, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from adapted
        raise
    rowcount = cursor._cursor.rowcount
    rows: list[Any] = []
    if form.row is not None and cursor._rows:
        make, readers = form.row._make, form.readers
        if any(readers):
            rows = [
                make([r(v) if r is not None else v for r, v in zip(readers, raw, strict=True)])
                for raw in cursor._rows
            ]
        else:
            rows = [make(raw) for raw in cursor._rows]
    if listened:
        sync.dispatch.after_cursor_execute(sync, None, form.sql, bound, None, False)
    return Rows(rows, rowcount)
