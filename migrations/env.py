"""Alembic environment: runs the ledger's migrations on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import Connection

from ledger.db.engine import WRITE, create_engine
from ledger.db.fts import include_name
from ledger.db.models import metadata
from ledger.settings import Settings

config = context.config


def _url() -> str:
    x_args = context.get_x_argument(as_dictionary=True)
    return x_args.get("url") or config.get_main_option("sqlalchemy.url") or Settings().url


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        # On SQLite migration 0017 adds documents.parent_id with its foreign key written on
        # the column (ADD COLUMN cannot add a table constraint, and a batch copy of
        # documents would drop its counter triggers); SQLAlchemy reflects neither the name
        # nor the ON DELETE of that form. tests/core/test_child_documents.py checks the key
        # itself with PRAGMA foreign_key_list.
        if sqlite and type_ == "foreign_key_constraint":
            columns = {c.name for c in obj.columns}
            return not (obj.table.name == "documents" and columns == {"parent_id"})
        return True

    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=sqlite,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )


def _run(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    if connection.dialect.name == "sqlite":
        # Foreign keys are off while migrating (see create_engine); prove nothing broke them.
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows that break foreign keys: {broken[:5]}")


async def _run_async() -> None:
    engine = create_engine(Settings(database_url=_url()), migrating=True)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**{WRITE: True})
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())
