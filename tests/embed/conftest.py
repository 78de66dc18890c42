"""Fixtures of the embedding tests: a ledger with a real clock, a real embedding server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ledger.app import Ledger
from tests.embed.server import EmbeddingServer
from tests.pipeline.support import pipeline_settings


@pytest.fixture
async def led(db_url: str, tmp_path: Path) -> AsyncIterator[Ledger]:
    ledger = await Ledger.open(pipeline_settings(db_url, tmp_path / "home", max_attempts=5))
    try:
        yield ledger
    finally:
        await ledger.close()


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    srv = EmbeddingServer(max_tokens=64).start()
    try:
        yield srv
    finally:
        srv.down()
