"""The metadata every table joins, and its naming convention."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import MetaData

# Every constraint and index gets a stable name: Alembic's SQLite batch mode silently drops
# unnamed CHECK constraints, and stable names make migrations reviewable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def sql_in(column: str, values: Iterable[str]) -> str:
    """A CHECK condition: ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"
