"""SQLite: one writer at a time, the machine's clock, FTS5, and upkeep by hand.

A writing transaction takes the database's write lock up front (BEGIN IMMEDIATE, see
``db.engine``), which is stronger than any row lock: the lock methods here add nothing.
Only processes on the machine that holds the file can write it, so its clock is the
database's clock, one maintenance runner is elected by a lease row, and a waiting worker
polls (there is no channel to wake it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import ColumnElement, Select, String, Table, bindparam, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from ledger.db import fts
from ledger.db.backends.base import DocumentRow
from ledger.db.types import sqlite_timestamp

# The asyncio extension, the leader and the upkeep are loaded when first used: the status
# command's fast path reaches this module and must not pay for them.
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from ledger.db.leader import Held, Transact

# One statement per chunk, the rows passed as one JSON array, sent straight to the driver.
# Going through the Core statement cost more than the insert itself: per row a parameter
# dict was built, then SQLAlchemy compiled it into a parameter list and ran the bind
# processors. With triggers on the table, SQLite opens a statement journal for every
# statement, which made a per-row executemany three times slower than this set-based
# insert (3.4 s against 1.0 s for 100,000 rows). json_extract (not ->>) keeps SQLite 3.37,
# the oldest a supported system ships, working.
_DOCUMENT_INSERT = """
    INSERT INTO documents (batch_id, source, source_size, source_mtime_ns, source_sha256, meta,
        status, attempts, next_attempt_at, created_at, updated_at, parent_id, member_path)
    SELECT ?1, json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]'),
        json_extract(r.value, '$[2]'), json_extract(r.value, '$[3]'),
        json_extract(r.value, '$[4]'), 'pending', 0, ?2, ?2, ?2, ?4,
        json_extract(r.value, '$[5]')
    FROM json_each(?3) AS r
    WHERE true
    ON CONFLICT (batch_id, source) DO NOTHING
    """


@functools.cache
def _rows_insert(
    table: str, constants: tuple[str, ...], columns: tuple[str, ...], *, each: bool = False
) -> str:
    """The set-based insert of :meth:`SqliteBackend.insert_rows`, like ``_DOCUMENT_INSERT``:
    the constants bound first (?1...), the rows as one JSON array of arrays after them (with
    ``each``, one row's values after them, for an executemany). Table and column names come
    from the table definitions, never from input."""
    into = f"INSERT INTO {table} ({', '.join((*constants, *columns))})"
    if each:
        return f"{into} VALUES ({', '.join('?' * (len(constants) + len(columns)))})"
    picks = [f"?{n}" for n in range(1, len(constants) + 1)]
    picks += [f"json_extract(r.value, '$[{i}]')" for i in range(len(columns))]
    return f"{into} SELECT {', '.join(picks)} FROM json_each(?{len(constants) + 1}) AS r"


def _bound(table: Table, name: str, value: Any, dialect: Dialect) -> Any:
    """``value`` as the driver gets it for column ``name`` (a timestamp as its text)."""
    process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


class _JsonList(TypeDecorator[Sequence[Any]]):
    """A list bound as its JSON text, for ``json_each``."""

    impl = String()
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value)


class MachineClock:
    """The local clock: only processes on this machine can write the file."""

    async def now(self, conn: AsyncConnection) -> datetime:
        return datetime.now(UTC)


class SqliteBackend:
    name = "sqlite"
    single_writer = True
    announces_due_work = False
    needs_upkeep = True
    writes_in_one_statement = False

    def clock(self) -> MachineClock:
        return MachineClock()

    def lock_rows(self, query: Select[Any], *, of: Table, skip_locked: bool = False) -> Select[Any]:
        # No row locks: the transaction already holds the database's write lock.
        return query

    async def lock_for_transaction(self, conn: AsyncConnection, name: str) -> None:
        return  # the writing transaction already holds the database's write lock

    def insert_ignoring_duplicates(self, table: Table) -> Any:
        return sqlite.insert(table).on_conflict_do_nothing()

    def insert_or_update(self, table: Table, *, keys: Sequence[str], values: dict[str, Any]) -> Any:
        return sqlite.insert(table).on_conflict_do_update(index_elements=list(keys), set_=values)

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
        if not rows:
            return
        paths: Sequence[str | None] = [None] * len(rows) if member_paths is None else member_paths
        # meta travels as its JSON text (a JSON string), so json_extract returns the text.
        encoded = json.dumps(
            [
                (source, size, mtime_ns, sha256, None if meta is None else json.dumps(meta), path)
                for (source, size, mtime_ns, sha256, meta), path in zip(rows, paths, strict=True)
            ]
        )
        await conn.exec_driver_sql(
            _DOCUMENT_INSERT, (batch_id, sqlite_timestamp(now), encoded, parent_id)
        )

    async def insert_rows(
        self,
        conn: AsyncConnection,
        table: Table,
        *,
        constants: Mapping[str, Any],
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        if not rows:
            return
        names = tuple(constants)
        bound = tuple(_bound(table, name, constants[name], conn.dialect) for name in names)
        # msgspec's encoder: half the time of json.dumps on chunk text, the same JSON.
        encoded = msgspec.json.encode(rows).decode()
        if "\\u0000" in encoded:
            # json_extract ends a text at its first NUL character: rows holding one go
            # through the driver row by row, kept whole.
            await conn.exec_driver_sql(
                _rows_insert(table.name, names, tuple(columns), each=True),
                [(*bound, *row) for row in rows],
            )
            return
        await conn.exec_driver_sql(
            _rows_insert(table.name, names, tuple(columns)), (*bound, encoded)
        )

    def one_of(self, column: ColumnElement[Any], name: str = "p_ids") -> ColumnElement[bool]:
        # The planner still looks each value up by the column's index (for an INTEGER
        # PRIMARY KEY: SEARCH ... USING INTEGER PRIMARY KEY), as for an IN list.
        values = func.json_each(bindparam(name, type_=_JsonList())).table_valued("value")
        return column.in_(select(values.c.value))

    def random_token(self) -> ColumnElement[str]:
        return func.lower(func.hex(func.randomblob(16)))

    def seconds_between(
        self, later: ColumnElement[Any], earlier: ColumnElement[Any]
    ) -> ColumnElement[float]:
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    def minute_of(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        # Timestamps are fixed-width UTC text (see ``db.types``): the minute is a prefix.
        return func.substr(moment, 1, 16, type_=String())

    def settled_txid(self) -> ColumnElement[int] | None:
        return None  # one writer at a time: everything committed is settled

    async def table_row_counts(
        self, conn: AsyncConnection, tables: Mapping[str, Table]
    ) -> dict[str, int]:
        return {
            name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for name, table in sorted(tables.items())
        }

    def ranked_search(self, parsed: fts.ParsedQuery, filters: str) -> tuple[str, str]:
        return fts.SQLITE_SEARCH.format(filters=filters), fts.fts5_match(parsed)

    async def announce_due(self, conn: AsyncConnection, batch_ids: Iterable[str]) -> None:
        return  # no channel: waiting workers poll

    def leadership(
        self, engine: AsyncEngine, transact: Transact, *, owner: str, lease: timedelta
    ) -> AbstractAsyncContextManager[Held | None]:
        from ledger.db.leader import lease_leadership

        return lease_leadership(transact, owner, lease)

    async def upkeep(self, engine: AsyncEngine) -> bool:
        from ledger.db.upkeep import optimize

        return await optimize(engine)
