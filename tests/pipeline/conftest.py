"""Fixtures of the pipeline tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from tests.pipeline.support import pipeline_settings


@pytest.fixture
async def led(db_url: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    """A Ledger with the real clock (workers wait on real time) on a fresh database."""
    ledger = await Ledger.open(pipeline_settings(db_url, tmp_path / "home"))
    try:
        yield ledger
    finally:
        await ledger.close()
