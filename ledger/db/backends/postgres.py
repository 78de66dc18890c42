"""PostgreSQL: concurrent writers, row locks, the server's clock, tsvector, LISTEN/NOTIFY.

Many workers on many machines write at once, so the hot statements lock the rows they
change (claims skip rows another claimer holds), leases are judged by the server's clock,
the event log is read up to the oldest transaction that may still be running, and idle
workers are woken by a notification when work becomes due.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    String,
    Table,
    any_,
    bindparam,
    cast,
    column,
    func,
    insert,
    text,
)
from sqlalchemy.dialects import postgresql

from ledger.db import fts
from ledger.db.backends.base import DocumentRow

# The asyncio extension, the clock, the notifier and the leader are loaded when first used:
# the status command's fast path reaches this module and must not pay for them.
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from ledger.db.leader import Held, Transact
    from ledger.db.server_clock import ServerClock

# FROM unnest(arrays): one statement per chunk (the driver would otherwise send one
# statement per row, each firing the statement-level counter trigger).
_DOCUMENT_INSERT = text(
    """
    INSERT INTO documents (batch_id, source, source_size, source_mtime_ns, source_sha256, meta,
        status, attempts, next_attempt_at, created_at, updated_at, parent_id, member_path)
    SELECT :batch_id, t.source, t.size, t.mtime_ns, t.sha256, t.meta,
        'pending', 0, :now, :now, :now, :parent_id, t.member_path
    FROM unnest(:sources, :sizes, :mtimes, :sha256s, :metas, :member_paths)
        AS t(source, size, mtime_ns, sha256, meta, member_path)
    ON CONFLICT (batch_id, source) DO NOTHING
    """
).bindparams(
    bindparam("parent_id", type_=BigInteger()),
    bindparam("member_paths", type_=postgresql.ARRAY(String())),
    bindparam("sources", type_=postgresql.ARRAY(String())),
    bindparam("sizes", type_=postgresql.ARRAY(BigInteger())),
    bindparam("mtimes", type_=postgresql.ARRAY(BigInteger())),
    bindparam("sha256s", type_=postgresql.ARRAY(String())),
    bindparam("metas", type_=postgresql.ARRAY(postgresql.JSONB(none_as_null=True))),
)

# The oldest transaction of this database that may still be running, from the statement's
# own snapshot: its in-progress ids, less those the server says belong to another database
# (a long transaction there cannot write here and must not hold the log back). An id the
# activity view does not show (ended since the snapshot, another role's session, a
# prepared transaction) is kept: when unsure, wait. xid8 compares with the 32-bit
# backend_xid on its low half.
_SETTLED_TXID = text(
    """(SELECT coalesce(
           (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
             WHERE NOT EXISTS (
                   SELECT 1 FROM pg_stat_activity AS a
                    WHERE a.datname <> current_database()
                      AND a.backend_xid::text = (x::text::bigint % 4294967296)::text)),
           pg_snapshot_xmax(s.snap)::text::bigint)
        FROM (SELECT pg_current_snapshot() AS snap) AS s)"""
).columns(column("settled", BigInteger))

# A count of a big table reads all of it: the statistics collector's estimate instead.
_ROW_ESTIMATES = text(
    "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = current_schema()"
)
_ADVISORY_XACT_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))")


class PostgresBackend:
    name = "postgresql"
    single_writer = False
    announces_due_work = True
    needs_upkeep = False  # autovacuum does it
    writes_in_one_statement = True

    def clock(self) -> ServerClock:
        from ledger.db.server_clock import ServerClock

        return ServerClock()

    def lock_rows(self, query: Select[Any], *, of: Table, skip_locked: bool = False) -> Select[Any]:
        # SKIP LOCKED for claims: concurrent claimers take different rows instead of waiting.
        return query.with_for_update(of=of, skip_locked=skip_locked)

    async def lock_for_transaction(self, conn: AsyncConnection, name: str) -> None:
        await conn.execute(_ADVISORY_XACT_LOCK, {"name": name})

    def insert_ignoring_duplicates(self, table: Table) -> Any:
        return postgresql.insert(table).on_conflict_do_nothing()

    def insert_or_update(self, table: Table, *, keys: Sequence[str], values: dict[str, Any]) -> Any:
        statement = postgresql.insert(table)
        return statement.on_conflict_do_update(index_elements=list(keys), set_=values)

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
        await conn.execute(
            _DOCUMENT_INSERT,
            {
                "batch_id": batch_id,
                "now": now,
                "sources": [r[0] for r in rows],
                "sizes": [r[1] for r in rows],
                "mtimes": [r[2] for r in rows],
                "sha256s": [r[3] for r in rows],
                "metas": [r[4] for r in rows],
                "parent_id": parent_id,
                "member_paths": list(paths),
            },
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
        fixed = dict(constants)
        # asyncpg sends an executemany as one prepared statement over a pipeline of rows.
        await conn.execute(
            insert(table), [{**fixed, **dict(zip(columns, row, strict=True))} for row in rows]
        )

    def one_of(self, column: ColumnElement[Any], name: str = "p_ids") -> ColumnElement[bool]:
        # An array of the column's type: ``= ANY`` of it uses the column's index.
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))

    def random_token(self) -> ColumnElement[str]:
        return func.replace(cast(func.gen_random_uuid(), String), "-", "")

    def seconds_between(
        self, later: ColumnElement[Any], earlier: ColumnElement[Any]
    ) -> ColumnElement[float]:
        return cast(func.extract("epoch", later - earlier), Float)

    def minute_of(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        return func.to_char(
            func.date_trunc("minute", func.timezone("UTC", moment)),
            "YYYY-MM-DD HH24:MI",
            type_=String(),
        )

    def settled_txid(self) -> ColumnElement[int] | None:
        return _SETTLED_TXID.scalar_subquery()

    async def table_row_counts(
        self, conn: AsyncConnection, tables: Mapping[str, Table]
    ) -> dict[str, int]:
        estimates = {r.relname: int(r.n_live_tup) for r in await conn.execute(_ROW_ESTIMATES)}
        return {name: estimates.get(name, 0) for name in sorted(tables)}

    def ranked_search(self, parsed: fts.ParsedQuery, filters: str) -> tuple[str, str]:
        statement = fts.POSTGRES_SEARCH.format(config=fts.TS_CONFIG, filters=filters)
        return statement, fts.websearch_text(parsed)

    async def announce_due(self, conn: AsyncConnection, batch_ids: Iterable[str]) -> None:
        from ledger.db.notify import announce_due

        await announce_due(conn, batch_ids)

    def leadership(
        self, engine: AsyncEngine, transact: Transact, *, owner: str, lease: timedelta
    ) -> AbstractAsyncContextManager[Held | None]:
        from ledger.db.leader import advisory_leadership

        return advisory_leadership(engine)

    async def upkeep(self, engine: AsyncEngine) -> bool:
        return False  # autovacuum keeps statistics and files in shape
