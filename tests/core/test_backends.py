"""The backend a ledger talks through is the one its URL names, and each backend's pieces of
SQL run on its database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import literal, select

from ledger.app import Ledger
from ledger.db.backends import PostgresBackend, SqliteBackend, backend_named, backend_of
from ledger.db.models import metadata
from tests.conftest import settings_for


async def test_the_runner_holds_the_backend_of_its_url(db_url: str) -> None:
    ledger = await Ledger.open(settings_for(db_url))
    try:
        backend = ledger.runner.backend
        expected = SqliteBackend if db_url.startswith("sqlite") else PostgresBackend
        assert isinstance(backend, expected)
        assert backend_of(ledger.engine) is backend
        async with ledger.runner.transaction() as conn:
            assert backend_of(conn) is backend
            earlier = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
            later = earlier + timedelta(seconds=90)
            token, seconds = (
                await conn.execute(
                    select(
                        backend.random_token(),
                        backend.seconds_between(literal(later), literal(earlier)),
                    )
                )
            ).one()
            assert re.fullmatch(r"[0-9a-f]{32}", token)
            assert seconds == pytest.approx(90.0)
            counts = await backend.table_row_counts(conn, metadata.tables)
            assert set(counts) == set(metadata.tables)
    finally:
        await ledger.close()


def test_a_database_ledger_does_not_run_on_is_refused() -> None:
    with pytest.raises(ValueError, match="mysql"):
        backend_named("mysql")
