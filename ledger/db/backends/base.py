"""What a database backend answers for the ledger: the statements and habits that differ.

Every service writes the same SQL on both databases through SQLAlchemy Core. Where the two
databases need different SQL (row locks, upserts, bulk inserts, the clock, the event log's
settled horizon, full-text search) or different machinery (waking workers, electing the
maintenance leader, file upkeep), the service asks its backend, by a method whose name
says what it does. ``backends/sqlite.py`` and ``backends/postgres.py`` hold the two
answers side by side under the same names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Select, Table
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from ledger.db.fts import ParsedQuery
    from ledger.db.leader import Held, Transact

DocumentRow = tuple[str, int | None, int | None, str | None, Any]
"""What submit inserts per document: source, size, mtime_ns, sha256, meta."""


class DatabaseClock(Protocol):
    """The time leases are judged by, for one runner."""

    async def now(self, conn: AsyncConnection) -> datetime: ...


class Backend(Protocol):
    """One database's way of doing what the ledger needs; see the module docstring."""

    name: str
    single_writer: bool
    """One writer at a time (SQLite): a process does better to queue its own write
    transactions than to let them meet in the database's busy handler, and a batch's
    pending count read under the write lock stays true until commit."""
    announces_due_work: bool
    """Whether workers can be woken when work becomes due (PostgreSQL LISTEN/NOTIFY);
    without it they poll."""
    needs_upkeep: bool
    """Whether maintenance runs :meth:`upkeep` now and then (SQLite has no autovacuum)."""
    writes_in_one_statement: bool
    """Whether one statement may carry writes to other tables as data-modifying CTEs
    (PostgreSQL): an ending's attempt rows, events and documents' update then cost one round
    trip instead of three. SQLite has no such CTEs and no round trips to save."""

    def clock(self) -> DatabaseClock:
        """A fresh clock for one runner: the server's on PostgreSQL, the machine's on SQLite."""
        ...

    def lock_rows(self, query: Select[Any], *, of: Table, skip_locked: bool = False) -> Select[Any]:
        """``query`` locking the rows it selects (of ``of``) until the transaction ends."""
        ...

    async def lock_for_transaction(self, conn: AsyncConnection, name: str) -> None:
        """Serialise the transactions that name the same ``name`` until this one ends."""
        ...

    def insert_ignoring_duplicates(self, table: Table) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING into ``table``."""
        ...

    def insert_or_update(self, table: Table, *, keys: Sequence[str], values: dict[str, Any]) -> Any:
        """INSERT ... ON CONFLICT (``keys``) DO UPDATE SET ``values``."""
        ...

    async def insert_documents(
        self,
        conn: AsyncConnection,
        batch_id: str,
        now: datetime,
        rows: Sequence[DocumentRow],
        *,
        parent_id: int | None = None,
        member_paths: Sequence[str] | None = None,
    ) -> None:
        """Insert new pending documents in one set-based statement, skipping sources the
        batch already has; with ``parent_id``, as its children at ``member_paths``."""
        ...

    async def insert_rows(
        self,
        conn: AsyncConnection,
        table: Table,
        *,
        constants: Mapping[str, Any],
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert ``rows`` (values of ``columns``, each a plain int, float, str or None)
        into ``table``, every row also taking the ``constants`` (bound through their
        columns' types, once): the chunks of a document, say, in one statement."""
        ...

    def one_of(self, column: ColumnElement[Any], name: str = "p_ids") -> ColumnElement[bool]:
        """``column`` is one of the values of the list bound as ``name``.

        The whole list is one parameter, so the statement's text is the same for a list of
        any length: SQLAlchemy renders it once and the database prepares it once (an
        expanding ``IN`` list was rendered anew for every execution, and each length was
        another statement for the database to prepare). The caller binds a Python list.
        """
        ...

    def random_token(self) -> ColumnElement[str]:
        """A fresh 32-hex-digit random token, computed by the database for each row."""
        ...

    def seconds_between(
        self, later: ColumnElement[Any], earlier: ColumnElement[Any]
    ) -> ColumnElement[float]:
        """``later - earlier`` in seconds, as a float, for two timestamp expressions."""
        ...

    def minute_of(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """The UTC minute of a timestamp column as text, ``YYYY-MM-DD HH:MM``."""
        ...

    def settled_txid(self) -> ColumnElement[int] | None:
        """The oldest transaction id that may still be running, or None where everything
        committed is settled (one writer at a time)."""
        ...

    async def table_row_counts(
        self, conn: AsyncConnection, tables: Mapping[str, Table]
    ) -> dict[str, int]:
        """Rows per table, exact or the statistics' estimate where a count is costly."""
        ...

    def ranked_search(self, parsed: ParsedQuery, filters: str) -> tuple[str, str]:
        """The ranked full-text search statement and its ``:match`` value."""
        ...

    async def announce_due(self, conn: AsyncConnection, batch_ids: Iterable[str]) -> None:
        """Tell listening workers, once this transaction commits, that batches have due work."""
        ...

    def leadership(
        self, engine: AsyncEngine, transact: Transact, *, owner: str, lease: timedelta
    ) -> AbstractAsyncContextManager[Held | None]:
        """Hold the maintenance lock for a block, or yield None when another process has it."""
        ...

    async def upkeep(self, engine: AsyncEngine) -> bool:
        """Housekeeping outside any transaction; whether anything ran."""
        ...
