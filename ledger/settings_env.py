"""The few settings a read-only command needs, resolved without loading pydantic.

``ledger status`` needs the database URL, the lease time and SQLite's busy timeout; the full
:class:`ledger.settings.Settings` costs pydantic and pydantic-settings, a large part of the
command's start-up. This module holds what both read: the defaults, how an environment
variable is found (as pydantic-settings finds it: ``LEDGER_<NAME>``, any case) and the URL
the home folder implies. The precedence is the same: a command-line flag, then the
environment, then the default. Anything this resolver is not sure of (a value it cannot
read plainly) makes it answer None: the caller then builds the full settings, which apply
the same precedence and explain what is wrong.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple, TypeVar

from ledger.database_url import async_database_url
from ledger.home import default_home

ENV_PREFIX = "LEDGER_"
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_BUSY_TIMEOUT_MS = 30_000

Number = TypeVar("Number", int, float)


def database_url_for(database_url: str | None, home: Path) -> str:
    """The database URL in force: the one given, else the SQLite file ledger.db in ``home``."""
    return database_url or f"sqlite+aiosqlite:///{home / 'ledger.db'}"


class ReadSettings(NamedTuple):
    """What a command that only reads a SQLite ledger needs of the settings."""

    url: str
    lease_seconds: float
    busy_timeout_ms: int


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    # pydantic-settings (case_sensitive off) lower-cases every name; the last of two
    # spellings of one name wins there, and so here.
    return {name.lower(): value for name, value in environ.items()}


def read_settings(
    *,
    home: Path | None = None,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> ReadSettings | None:
    """The read settings from the flags given, the environment and the defaults; None if
    a value is not plainly valid (the full settings then decide and explain)."""
    env = _environment(os.environ if environ is None else environ)

    def named(field: str) -> str | None:
        return env.get((ENV_PREFIX + field).lower())

    try:
        if home is None:
            home = _path(named("home"))
        url = database_url if database_url is not None else named("database_url")
        lease_seconds = _number(named("lease_seconds"), float, DEFAULT_LEASE_SECONDS)
        busy_timeout_ms = _number(named("busy_timeout_ms"), int, DEFAULT_BUSY_TIMEOUT_MS)
        checked_url = None if url is None else async_database_url(url)
    except ValueError:
        return None
    if not lease_seconds > 0 or busy_timeout_ms < 0:
        return None
    return ReadSettings(database_url_for(checked_url, home), lease_seconds, busy_timeout_ms)


def _path(value: str | None) -> Path:
    if value is None:
        return default_home()
    if not value.strip():
        raise ValueError("an empty folder name")
    return Path(value)


def _number(value: str | None, kind: type[Number], default: Number) -> Number:
    if value is None:
        return default
    number = kind(value.strip())
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("not a finite number")
    return number
