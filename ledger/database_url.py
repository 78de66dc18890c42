"""The database URL an operator gives (LEDGER_DATABASE_URL, --database-url), checked and
turned into the URL of an async driver."""

from __future__ import annotations

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
