"""Fixtures of the sink tests: a ledger with sink profiles over real embedded stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from tests.embed.conftest import server  # noqa: F401  (the real embedding server)
from tests.pipeline.support import pipeline_settings
from tests.sinks.support import sink_profiles


@pytest.fixture
def stores(tmp_path: Path) -> Path:
    folder = tmp_path / "stores"
    folder.mkdir()
    return folder


async def open_ledger(url: str, home: Path, stores: Path, **overrides: object) -> Ledger:
    return await Ledger.open(pipeline_settings(url, home, sinks=sink_profiles(stores), **overrides))


@pytest.fixture
async def led(sqlite_url: str, tmp_path: Path, stores: Path) -> AsyncIterator[Ledger]:
    ledger = await open_ledger(sqlite_url, tmp_path / "home", stores)
    try:
        yield ledger
    finally:
        await ledger.close()
