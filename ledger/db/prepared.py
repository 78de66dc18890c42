"""Statements built once, run many times.

The hot statements are built once per database dialect and statement shape, with every
value a bind parameter: SQLAlchemy then reuses their compiled form. Building an expression
tree and its cache key anew for each call cost more CPU than the database's work for a
whole claim of documents (profiled at about 60% of a worker's time on ``noop``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, literal_column
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from ledger.db.types import UTCDateTime

_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def prepared(conn: AsyncConnection, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """The statement ``build()`` makes, built once for this dialect and ``key``."""
    full_key = (conn.dialect.name, *key)
    statement = _STATEMENTS.get(full_key)
    if statement is None:
        statement = _STATEMENTS[full_key] = build()
    return statement


def ids_param(name: str = "p_ids") -> BindParameter[Any]:
    """A list of values, one parameter each in the statement as sent:
    ``column.in_(ids_param())``.

    The statement's text is rendered again for every execution and differs with the list's
    length; a list of single values is better bound as one parameter
    (:meth:`ledger.db.backends.Backend.one_of`). This is left for lists of tuples.
    """
    return bindparam(name, expanding=True)


def time_param(name: str) -> BindParameter[datetime]:
    return bindparam(name, type_=UTCDateTime())


def inline(value: str) -> ColumnElement[Any]:
    """A constant written into the statement's text instead of bound.

    A query can use a partial index only if the planner sees that its rows are all in it:
    ``status = 'running'`` matches ``ix_documents_running_lease``, ``status = ?`` does not,
    and SQLite then scanned the whole documents table to find the few expired leases (on
    every claim: 6 us per document of a 20,000-document batch, growing with the table).
    PostgreSQL's generic plans of prepared statements have the same blind spot.
    """
    if "'" in value:
        raise ValueError(f"not a plain constant: {value!r}")
    return literal_column(f"'{value}'")
