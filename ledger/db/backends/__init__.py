"""The database backends: one object per database that answers what differs.

The runner holds the backend chosen from its URL (``runner.backend``); code that is handed
only a connection asks :func:`backend_of`. Nothing outside ``ledger.db`` tests which
database it is talking to (``tests/test_layering.py`` checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger.db.backends.base import Backend, DatabaseClock, DocumentRow
from ledger.db.backends.postgres import PostgresBackend
from ledger.db.backends.sqlite import SqliteBackend

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "Backend",
    "DatabaseClock",
    "DocumentRow",
    "PostgresBackend",
    "SqliteBackend",
    "backend_named",
    "backend_of",
]

# Typed as the protocol, so the type checker holds each implementation to it.
_SQLITE: Backend = SqliteBackend()
_POSTGRES: Backend = PostgresBackend()
_BACKENDS = {backend.name: backend for backend in (_SQLITE, _POSTGRES)}


def backend_named(dialect_name: str) -> Backend:
    """The backend of a SQLAlchemy dialect name (``sqlite``, ``postgresql``)."""
    try:
        return _BACKENDS[dialect_name]
    except KeyError:
        raise ValueError(f"ledger does not run on {dialect_name!r}") from None


def backend_of(bind: AsyncConnection | AsyncEngine) -> Backend:
    """The backend of the database ``bind`` talks to."""
    return backend_named(bind.dialect.name)
