"""Leased outbox rows: the claim shared by webhook deliveries and sink rows.

Such a table has ``id``, ``status`` ('pending' while owed), ``next_attempt_at``,
``lease_token``, ``lease_expires_at`` and ``updated_at``. A row is due when pending, its
time has come and no live lease holds it; claiming gives up to ``limit`` of them one new
token (a worker that dies leaves its lease to run out, and the next claim takes the row).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Select, Table, or_, select, update

from ledger.db.backends import backend_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

Task = TypeVar("Task")


def due(table: Table, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions of a row that may be claimed at ``now``."""
    return [
        table.c.status == "pending",
        table.c.next_attempt_at <= now,
        or_(table.c.lease_expires_at.is_(None), table.c.lease_expires_at <= now),
    ]


async def lease_due(
    conn: AsyncConnection, table: Table, *, now: datetime, lease: timedelta, limit: int
) -> tuple[str, list[int]]:
    """Lease up to ``limit`` due rows, oldest due first: (token, ids of the rows leased,
    possibly fewer than selected if another claimer was faster)."""
    query = backend_of(conn).lock_rows(
        select(table.c.id)
        .where(*due(table, now))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit),
        of=table,
        skip_locked=True,
    )
    ids = list((await conn.execute(query)).scalars())
    token = secrets.token_hex(16)
    if ids:
        await conn.execute(
            update(table)
            .where(table.c.id.in_(ids), *due(table, now))
            .values(lease_token=token, lease_expires_at=now + lease, updated_at=now)
        )
    return token, ids


async def claim_due(
    conn: AsyncConnection,
    table: Table,
    read: Select[Any],
    into: type[Task],
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[Task]:
    """Lease up to ``limit`` due rows of ``table`` and read them as ``into`` records, in
    ``read``'s order. ``read`` selects each field of the record under the field's name (the
    lease token among them); it is narrowed here to the rows this claim leased, and each row
    becomes its record field by field, by name."""
    token, ids = await lease_due(conn, table, now=now, lease=lease, limit=limit)
    if not ids:
        return []
    rows = await conn.execute(read.where(table.c.id.in_(ids), table.c.lease_token == token))
    return [msgspec.convert(row, into, from_attributes=True) for row in rows]
