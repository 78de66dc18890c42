"""Shared fixtures: real databases on disk (SQLite) and on the PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.db import migrate
from ledger.settings import Settings

POSTGRES_URL = os.environ.get(
    "LEDGER_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
# One template per test session: several sessions may share the server at once.
_TEMPLATE = f"ledger_test_template_{os.getpid()}_{secrets.token_hex(3)}"
_pg_state: dict[str, Any] = {}


def postgres_available() -> str | None:
    """None when the PostgreSQL server answers, else why not (cached)."""
    if "error" not in _pg_state:
        try:
            import asyncpg

            async def probe() -> None:

                url = make_url(POSTGRES_URL)
                conn = await asyncpg.connect(
                    host=url.host,
                    port=url.port or 5432,
                    user=url.username,
                    database=url.database,
                    timeout=3,
                )
                await conn.close()

            asyncio.run(probe())
            _pg_state["error"] = None
        except Exception as exc:  # any failure means: no server for these tests
            _pg_state["error"] = f"{type(exc).__name__}: {exc}"
    return _pg_state["error"]  # type: ignore[no-any-return]


async def _admin(sql: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_URL)
    conn = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres_database() -> str:
    """A fresh, migrated PostgreSQL database (cloned from a migrated template)."""
    if "template" not in _pg_state:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {_TEMPLATE} WITH (FORCE)"))
        asyncio.run(_admin(f"CREATE DATABASE {_TEMPLATE}"))
        template_url = str(make_url(POSTGRES_URL).set(database=_TEMPLATE))
        migrate.upgrade(template_url)
        _pg_state["template"] = True
    name = f"ledger_test_{secrets.token_hex(6)}"
    asyncio.run(_admin(f"CREATE DATABASE {name} TEMPLATE {_TEMPLATE}"))
    _pg_state.setdefault("created", []).append(name)
    return str(make_url(POSTGRES_URL).set(database=name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    names = list(_pg_state.get("created", []))
    if _pg_state.get("template"):
        names.append(_TEMPLATE)
    for name in names:
        with contextlib.suppress(Exception):
            asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    error = _pg_state.get("error")
    if error:
        terminalreporter.write_sep(
            "!", f"PostgreSQL tests SKIPPED: no server at {POSTGRES_URL} ({error})", red=True
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database on each backend: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
        migrate.upgrade(url)
        return url
    error = postgres_available()
    if error:
        warnings.warn(f"PostgreSQL unavailable, skipping: {error}", stacklevel=1)
        pytest.skip(f"PostgreSQL server not reachable at {POSTGRES_URL}: {error}")
    return _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"
    migrate.upgrade(url)
    return url


@dataclass
class FakeClock:
    """A clock tests move by hand, so lease expiry and backoff need no sleeping."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))


def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "backoff_base_seconds": 10.0,
        "backoff_jitter": 0.0,
        "lease_seconds": 30.0,
        "max_attempts": 3,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def ledger(db_url: str, clock: FakeClock) -> AsyncIterator[Ledger]:
    """A Ledger on a fresh database with a hand-moved clock."""
    led = await Ledger.open(settings_for(db_url), clock=clock)
    try:
        yield led
    finally:
        await led.close()


@pytest.fixture
def sync_url(db_url: str) -> Iterator[str]:
    """The same database for plain synchronous SQL checks in tests."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        yield str(url.set(drivername="sqlite"))
    else:
        yield str(url.set(drivername="postgresql+psycopg2"))


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement with a throwaway synchronous engine; return the rows."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        # Like the ledger's own connections (SQLite checks foreign keys only when asked).
        event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys = ON"))
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()
