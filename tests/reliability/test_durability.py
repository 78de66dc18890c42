"""The durability setting really reaches SQLite: ``PRAGMA synchronous`` on the ledger's own
connections (SIGKILL tests prove crash safety of the process; power loss needs FULL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ledger.app import Ledger
from tests.conftest import settings_for

# What PRAGMA synchronous returns for each setting (SQLite: 0 OFF, 1 NORMAL, 2 FULL).
LEVELS = {"NORMAL": 1, "FULL": 2}


@pytest.mark.parametrize("setting", ["NORMAL", "FULL"])
async def test_sqlite_synchronous_reaches_every_connection(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("LEDGER_SQLITE_SYNCHRONOUS", setting)
    settings = settings_for(sqlite_url)
    assert settings.sqlite_synchronous == setting
    async with await Ledger.open(settings) as ledger:
        # Several connections at once: the pragma is per connection, not per file.
        conns = [await ledger.engine.connect() for _ in range(3)]
        try:
            for conn in conns:
                level = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
                assert level == LEVELS[setting]
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
                assert mode == "wal"
        finally:
            for conn in conns:
                await conn.close()
        # And on the write path the ledger itself uses.
        async with ledger.runner.transaction() as conn:
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar_one() == LEVELS[setting]


def test_default_is_normal(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.delenv("LEDGER_SQLITE_SYNCHRONOUS", raising=False)
    assert settings_for(sqlite_url).sqlite_synchronous == "NORMAL"
