"""The database URL an operator gives (LEDGER_DATABASE_URL, --database-url), checked and
turned into the URL of an async driver, and what the URL alone says about the database.

Besides ``ledger.db``, this is the one module that tells the two databases apart by name:
the decisions here are made before any connection exists (tests/test_layering.py names it).
"""

from __future__ import annotations

from pathlib import Path

# The URLs people copy from elsewhere name no driver; ledger talks to both databases
# through their async drivers, so the plain schemes mean those.
_ASYNC_SCHEMES = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def _async_driver(url: str) -> str:
    """``url`` with a driverless ``sqlite://`` or ``postgres(ql)://`` scheme made async."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _ASYNC_SCHEMES:
        return f"{_ASYNC_SCHEMES[scheme.lower()]}://{rest}"
    return url


def async_database_url(value: str) -> str:
    """``value`` with an async driver, or ValueError when it names another database."""
    value = _async_driver(value)
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(
            "LEDGER_DATABASE_URL must start with sqlite:// or postgresql:// "
            "(or sqlite+aiosqlite://, postgresql+asyncpg://)"
        )
    return value


def plain_sqlite_file(url: str) -> str | None:
    """The file a plain SQLite URL names (``sqlite[+driver]:///path``), read without a URL
    library; None for another database, memory, a ``file:`` URI, or a URL with a query or
    escapes (callers read those with SQLAlchemy's parser, which knows every form)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.partition("+")[0].lower() != "sqlite" or not rest.startswith("/"):
        return None
    database = rest[1:]
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return None if "?" in database or "%" in database else database


def migrates_on_first_use(url: str) -> bool:
    """Whether any command creates or upgrades the schema on the spot: a SQLite database
    belongs to its machine, so the first command on a fresh one just works. PostgreSQL is
    shared and upgrading it is a deliberate act (``ledger db upgrade``)."""
    return url.startswith("sqlite")


def sqlite_file(url: str) -> Path | None:
    """The SQLite database file ``url`` names, or None (PostgreSQL, in memory, a URI)."""
    plain = plain_sqlite_file(url)
    if plain is not None:
        return Path(plain).expanduser()
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url  # the other forms of a SQLite URL

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None  # in memory, or a URI: SQLite decides; no file to check here
    return Path(parsed.database).expanduser()
