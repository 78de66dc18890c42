"""The settings a status read takes without pydantic are the full settings' values: the same
defaults, the same precedence (flag, environment, default), the same names in any case; and
a value it cannot read plainly leaves the decision to the full settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ledger.database_url import plain_sqlite_file
from ledger.db.models import HEAD_REVISION
from ledger.db.sqlite_reads import head_revision
from ledger.settings import Settings
from ledger.settings_env import ReadSettings, read_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("LEDGER_"):
            monkeypatch.delenv(name)


def full(**flags: object) -> ReadSettings:
    settings = Settings(**flags)  # type: ignore[arg-type]
    return ReadSettings(settings.url, settings.lease_seconds, settings.busy_timeout_ms)


@pytest.mark.usefixtures("clean_env")
def test_defaults_and_environment_match_the_full_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert read_settings() == full()
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ledger_lease_seconds", "12.5")  # pydantic-settings ignores case
    monkeypatch.setenv("LEDGER_BUSY_TIMEOUT_MS", "250")
    assert (
        read_settings()
        == full()
        == (f"sqlite+aiosqlite:///{tmp_path / 'home' / 'ledger.db'}", 12.5, 250)
    )
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://u@h/db")
    assert read_settings() == full()
    assert read_settings().url == "postgresql+asyncpg://u@h/db"  # type: ignore[union-attr]


@pytest.mark.usefixtures("clean_env")
def test_flags_come_before_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "env"))
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    flagged = {"home": tmp_path / "flag", "database_url": f"sqlite:///{tmp_path / 'flag.db'}"}
    assert read_settings(**flagged) == full(**flagged)  # type: ignore[arg-type]
    monkeypatch.delenv("LEDGER_DATABASE_URL")
    assert read_settings(home=tmp_path / "flag") == full(home=tmp_path / "flag")


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LEDGER_LEASE_SECONDS", "0"),
        ("LEDGER_LEASE_SECONDS", "soon"),
        ("LEDGER_LEASE_SECONDS", ""),
        ("LEDGER_BUSY_TIMEOUT_MS", "-1"),
        ("LEDGER_BUSY_TIMEOUT_MS", "1.5"),
        ("LEDGER_DATABASE_URL", "mysql://h/db"),
        ("LEDGER_HOME", ""),
    ],
)
def test_a_value_not_plainly_valid_is_left_to_the_full_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert read_settings() is None


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///relative/ledger.db",
        "sqlite+aiosqlite:////abs/ledger.db",
        "sqlite:////abs/with space/ledger.db",
        "sqlite+aiosqlite:///~/ledger.db",
    ],
)
def test_a_plain_sqlite_url_names_the_file_sqlalchemy_reads(url: str) -> None:
    assert plain_sqlite_file(url) == make_url(url).database


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://u@h/db",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file:ledger.db?mode=ro&uri=true",
        "sqlite+aiosqlite:///ledger.db?timeout=5",
        "sqlite+aiosqlite:///led%20ger.db",
    ],
)
def test_other_urls_are_left_to_sqlalchemy(url: str) -> None:
    assert plain_sqlite_file(url) is None


def test_the_fast_read_knows_the_schema_revision_of_this_version() -> None:
    assert head_revision() == HEAD_REVISION
