"""Run the Alembic migrations from the installed package (no source tree needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """The folder holding env.py and versions/, wherever the package is installed.

    A wheel carries it as ``ledger._migrations``; a source checkout (editable install) has
    it beside the package.
    """
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file():
        return checkout
    return Path(str(resources.files("ledger._migrations")))


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at ``url``."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    command.downgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    """:func:`upgrade` from async code (Alembic's environment runs its own event loop)."""
    await asyncio.to_thread(upgrade, url, revision)


def head_revision() -> str | None:
    """The newest revision the installed migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: not migrated at all)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import Connection

    from ledger.db.engine import create_engine
    from ledger.settings import Settings

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def history() -> list[tuple[str, str | None, str]]:
    """Every known revision, newest first, as (revision, down_revision, message)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    out: list[tuple[str, str | None, str]] = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        out.append(
            (
                rev.revision,
                down if isinstance(down, str) or down is None else ",".join(down),
                (rev.doc or "").strip(),
            )
        )
    return out


def compared_objects(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """The ``include_object`` filter for comparing the database with the models (`alembic
    check`, the migration tests).

    On SQLite migration 0017 adds ``documents.parent_id`` with its foreign key written on
    the column (ADD COLUMN cannot add a table constraint, and a batch copy of ``documents``
    would drop its counter triggers); SQLAlchemy reflects neither the name nor the ON DELETE
    of that form, so that one key is left out of the comparison there.
    tests/core/test_child_documents.py checks the key itself with PRAGMA foreign_key_list."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if dialect == "sqlite" and type_ == "foreign_key_constraint":
            columns = {c.name for c in obj.columns}
            return not (obj.table.name == "documents" and columns == {"parent_id"})
        return True

    return include
