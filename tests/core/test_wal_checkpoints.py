"""WAL checkpoints on SQLite run on a thread of their own, never inside a commit."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ledger.app import Ledger
from ledger.model import BatchSpec, SourceSpec
from tests.conftest import settings_for

THREAD = "ledger-wal-checkpoint"


def _checkpoint_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == THREAD)


async def _autocheckpoint(ledger: Ledger) -> int:
    async with ledger.runner.engine.connect() as conn:
        return int((await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one())


def _file_size(path: Path) -> int:
    return os.stat(path).st_size  # a few microseconds: not worth a thread


async def _until(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_committed_pages_reach_the_database_file_without_a_checkpointing_commit(
    sqlite_url: str,
) -> None:
    path = Path(make_url(sqlite_url).database or "")
    before = _checkpoint_threads()
    async with await Ledger.open(settings_for(sqlite_url)) as ledger:
        # No commit of this process checkpoints: the thread does.
        assert await _autocheckpoint(ledger) == 0
        assert _checkpoint_threads() == before + 1
        size = _file_size(path)
        await ledger.queue.submit(
            BatchSpec(id="big", processor="noop"),
            [SourceSpec(f"/docs/{i:05d}-{'x' * 200}") for i in range(3000)],
        )
        # About 1 MB of new pages, written to the log by the commit and copied into the
        # database file by the checkpoint thread within a few of its rounds.
        assert await _until(lambda: _file_size(path) > size + 500_000)
        batch = await ledger.reads.batch("big")
        assert batch.total == 3000
    # The thread stops with the engine.
    assert await _until(lambda: _checkpoint_threads() == before, seconds=5.0)


async def test_with_synchronous_full_sqlite_keeps_its_own_checkpoints(sqlite_url: str) -> None:
    before = _checkpoint_threads()
    async with await Ledger.open(settings_for(sqlite_url, sqlite_synchronous="FULL")) as ledger:
        assert await _autocheckpoint(ledger) == 1000  # SQLite's default
        assert _checkpoint_threads() == before


async def test_a_database_opened_by_uri_keeps_sqlites_own_checkpoints(sqlite_url: str) -> None:
    # A URI may open the file in ways (read-only, shared cache) a second connection of the
    # checkpoint thread must not guess at: SQLite checkpoints it as it always did.
    path = make_url(sqlite_url).database
    before = _checkpoint_threads()
    url = f"sqlite+aiosqlite:///file:{path}?uri=true"
    async with await Ledger.open(settings_for(url)) as ledger:
        assert await _autocheckpoint(ledger) == 1000
        assert _checkpoint_threads() == before


async def test_a_database_opened_by_uri_makes_no_folder_named_after_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A plain file's folder is made on first use; a URI's text is not a path: taken as
    # one, it made a folder called "file:" in the working directory.
    path = make_url(sqlite_url).database
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    url = f"sqlite+aiosqlite:///file:{path}?uri=true"
    async with await Ledger.open(settings_for(url)) as ledger:
        await ledger.queue.submit(BatchSpec(processor="noop"), [SourceSpec(source="/a")])
    assert os.listdir(cwd) == []
    assert _file_size(Path(str(path))) > 0
