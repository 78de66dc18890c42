"""``ledger status`` reads a SQLite ledger without opening the whole core
(ledger.queue.batch_status): the figures are the ledger's own, and a database that is not
at this version's schema still goes through the ledger, which migrates it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ledger.app import Ledger
from ledger.db.engine import create_engine
from ledger.errors import NotFound
from ledger.model import BatchSpec, SourceSpec
from ledger.queue.batch_status import read_status
from ledger.settings import Settings
from tests.cli.conftest import Cli


def _ingest_one_good_one_broken(cli: Cli, tmp_path: Path) -> str:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("plain words to index\n" * 5)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a pdf\n")
    cli("ingest", str(docs), env={"LEDGER_MAX_ATTEMPTS": "1"})
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'failed'") == 1
    return str(cli.scalar("SELECT id FROM batches"))


def test_the_sqlite_read_gives_what_the_ledger_gives(cli: Cli, tmp_path: Path) -> None:
    batch_id = _ingest_one_good_one_broken(cli, tmp_path)
    settings = Settings(home=cli.home)

    async def through_the_ledger() -> tuple[object, object]:
        ledger = Ledger(create_engine(settings), settings)
        try:
            return await ledger.reads.progress(batch_id), await ledger.reads.failures(batch_id)
        finally:
            await ledger.close()

    found = read_status(settings, batch_id)
    assert found is not None
    progress, groups = found
    assert progress.batch.total == 2 and progress.batch.complete
    assert [(g.code, g.count) for g in groups] == [(groups[0].code, 1)]
    # A complete batch: its rate is the run's average, the same whenever it is read.
    assert (progress, groups) == asyncio.run(through_the_ledger())


def test_a_schema_behind_this_version_is_migrated_then_read(cli: Cli, tmp_path: Path) -> None:
    batch_id = _ingest_one_good_one_broken(cli, tmp_path)
    head = cli.scalar("SELECT version_num FROM alembic_version")
    down = cli("db", "downgrade", "--yes", "--", "-1")
    assert down.code == 0, down.stderr
    assert cli.scalar("SELECT version_num FROM alembic_version") != head
    assert read_status(Settings(home=cli.home), batch_id) is None

    shown = cli("status", batch_id, "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["counts"]["failed"] == 1
    assert cli.scalar("SELECT version_num FROM alembic_version") == head


def test_status_of_an_unknown_batch_and_of_no_database(cli: Cli, tmp_path: Path) -> None:
    _ingest_one_good_one_broken(cli, tmp_path)
    unknown = cli("status", "no-such-batch", "--json")
    assert unknown.code == 1
    assert "no batch 'no-such-batch'" in unknown.stderr
    elsewhere = cli("--home", str(tmp_path / "empty"), "status", "x")
    assert elsewhere.code == 2 and "no ledger database" in elsewhere.stderr
    assert not (tmp_path / "empty").exists()  # reading created nothing


def test_a_waiting_batch_of_one_owner_reads_the_same_both_ways(cli: Cli) -> None:
    # Active with due work and no worker able to run it: no rate, no ETA, the processor it
    # waits for; its options come back from a JSON column, its owner scopes the read.
    assert cli("db", "upgrade").code == 0
    settings = Settings(home=cli.home)
    spec = BatchSpec(id="w", processor="elsewhere:process", owner="ann", options={"k": [1, 2]})

    async def submit_then_read() -> tuple[object, object]:
        async with await Ledger.open(settings) as ledger:
            await ledger.queue.submit(spec, [SourceSpec(f"/w/{i}") for i in range(3)])
            return await ledger.reads.progress("w", owner="ann"), []

    through_the_ledger = asyncio.run(submit_then_read())
    found = read_status(settings, "w", owner="ann")
    assert found is not None
    assert found == through_the_ledger
    assert found[0].waiting_for_processor == "elsewhere:process"
    assert found[0].batch.options == {"k": [1, 2]}
    with pytest.raises(NotFound):
        read_status(settings, "w", owner="bob")
