"""Database URLs without an async driver (as other tools write them) are accepted."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ledger.settings import Settings
from tests.cli.conftest import Cli
from tests.conftest import POSTGRES_URL, postgres_available


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_plain_sqlite_url_is_used_through_the_async_driver(
    cli: Cli, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    elsewhere = tmp_path / "elsewhere.db"
    url = f"sqlite:///{elsewhere}"
    flag = ["--database-url", url] if how == "flag" else []
    env = {"LEDGER_DATABASE_URL": url} if how == "environment" else None
    result = cli(*flag, "ingest", str(folder), "-p", "noop", env=env)
    assert result.code == 0, result.stderr
    assert elsewhere.exists()
    assert not cli.db.exists()  # the URL was used, not the default in the data folder
    listed = cli(*flag, "batches", "--json", env=env)
    assert listed.code == 0, listed.stderr
    assert len(listed.json()) == 1


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h:5432/db?ssl=require", "postgresql+asyncpg://u@h:5432/db?ssl=require"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_settings_normalise_the_scheme(given: str, meant: str) -> None:
    assert Settings(database_url=given).url == meant


def test_other_drivers_are_still_refused(cli: Cli) -> None:
    result = cli("--database-url", "postgresql+psycopg2://u@127.0.0.1/db", "batches")
    assert result.code == 2
    assert "--database-url" in result.stderr


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_plain_postgres_url_reaches_postgres(cli: Cli, scheme: str) -> None:
    if (why := postgres_available()) is not None:
        pytest.skip(f"PostgreSQL not available: {why}")
    url = make_url(POSTGRES_URL).set(drivername=scheme).render_as_string(hide_password=False)
    result = cli("--database-url", url, "db", "current", "--json")
    # Read only: the shared test database may or may not be migrated, but it was reached.
    assert result.code in (0, 1), result.stderr
    assert "cannot open the database" not in result.stderr
    assert "must start with" not in result.stderr
