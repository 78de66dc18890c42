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


@pytest.mark.parametrize("nul", [False, True], ids=["plain", "with-nul"])
async def test_insert_rows_stores_each_value_whole(db_url: str, nul: bool) -> None:
    """A document's chunks in one insert: every text whole (on SQLite a NUL character too,
    which its JSON functions would cut; PostgreSQL refuses one rather than cut it), NULLs
    kept, the constant timestamp as the column's type writes it."""
    from sqlalchemy.exc import DBAPIError

    from ledger.db.models import chunks, documents
    from ledger.model import BatchSpec, SourceSpec

    ledger = await Ledger.open(settings_for(db_url))
    try:
        submitted = await ledger.queue.submit(
            BatchSpec(processor="noop", name="rows"), [SourceSpec(source="/rows/a.txt")]
        )
        batch_id = submitted.batch.id
        texts = ["first chunk", 'ünïcode\u2028line — 漢字 "quoted" \\ back', "x" * 70_000]
        if nul:
            texts.append("before\x00after")
        rows = [
            (i, t, i * 10, i * 10 + len(t), None if i % 2 else i + 1) for i, t in enumerate(texts)
        ]
        now = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)

        async def insert() -> None:
            async with ledger.runner.transaction() as conn:
                doc_id = (await conn.execute(select(documents.c.id))).scalar_one()
                await backend_of(conn).insert_rows(
                    conn,
                    chunks,
                    constants={"document_id": doc_id, "batch_id": batch_id, "created_at": now},
                    columns=("ordinal", "text", "char_start", "char_end", "page"),
                    rows=rows,
                )

        if nul and not db_url.startswith("sqlite"):
            with pytest.raises(DBAPIError, match="0x00"):
                await insert()
            return
        await insert()
        async with ledger.runner.transaction(write=False) as conn:
            stored = (
                await conn.execute(
                    select(
                        chunks.c.ordinal,
                        chunks.c.text,
                        chunks.c.char_start,
                        chunks.c.char_end,
                        chunks.c.page,
                        chunks.c.batch_id,
                        chunks.c.created_at,
                    ).order_by(chunks.c.id)
                )
            ).all()
        assert [tuple(r[:5]) for r in stored] == rows
        assert {(r.batch_id, r.created_at) for r in stored} == {(batch_id, now)}
    finally:
        await ledger.close()
