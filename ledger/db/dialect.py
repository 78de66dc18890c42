"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, Select, String, Table, cast, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def is_postgres(conn: AsyncConnection) -> bool:
    return conn.dialect.name == "postgresql"


def insert_ignoring_duplicates(conn: AsyncConnection, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's backend."""
    if is_postgres(conn):
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def lock_rows(
    conn: AsyncConnection, query: Select[Any], *, of: Table, skip_locked: bool = False
) -> Select[Any]:
    """Lock the selected rows for this transaction.

    On PostgreSQL this is FOR UPDATE (SKIP LOCKED for claims, so concurrent claimers take
    different rows instead of waiting). SQLite has no row locks: the transaction already holds
    the database's write lock (BEGIN IMMEDIATE), which is stronger.
    """
    if is_postgres(conn):
        return query.with_for_update(of=of, skip_locked=skip_locked)
    return query


def random_token(conn: AsyncConnection) -> ColumnElement[str]:
    """A fresh 32-hex-digit random token, computed by the database for each row."""
    if is_postgres(conn):
        return func.replace(cast(func.gen_random_uuid(), String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def seconds_between(
    conn: AsyncConnection, later: ColumnElement[Any], earlier: ColumnElement[Any]
) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as a float, for two timestamp expressions."""
    if is_postgres(conn):
        return cast(func.extract("epoch", later - earlier), Float)
    return (func.julianday(later) - func.julianday(earlier)) * 86400.0
