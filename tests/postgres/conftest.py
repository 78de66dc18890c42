"""PostgreSQL-only fixtures: these tests need the server and skip loudly without it."""

from __future__ import annotations

import asyncio
import secrets
import warnings

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, _admin, _pg_state, _postgres_database, postgres_available

pytestmark = pytest.mark.postgres


def _require_server() -> None:
    error = postgres_available()
    if error:
        warnings.warn(f"PostgreSQL unavailable, skipping: {error}", stacklevel=2)
        pytest.skip(f"PostgreSQL server not reachable at {POSTGRES_URL}: {error}")


@pytest.fixture
def pg_url() -> str:
    """A fresh, migrated PostgreSQL database."""
    _require_server()
    return _postgres_database()


@pytest.fixture
def pg_sync_url(pg_url: str) -> str:
    return str(make_url(pg_url).set(drivername="postgresql+psycopg2"))


@pytest.fixture
def empty_pg_url() -> str:
    """A PostgreSQL database with nothing in it (not migrated)."""
    _require_server()
    name = f"ledger_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    _pg_state.setdefault("created", []).append(name)
    return str(make_url(POSTGRES_URL).set(database=name))
