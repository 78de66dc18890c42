"""Migrations on both backends: head matches the models, and down and up again work."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from ledger.db import migrate
from ledger.db.fts import include_name
from ledger.db.models import metadata
from tests.conftest import POSTGRES_URL, _admin, postgres_available
from tests.pipeline.support import sync_url_of


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (not migrated) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    error = postgres_available()
    if error:
        pytest.skip(f"PostgreSQL server not reachable at {POSTGRES_URL}: {error}")
    name = f"ledger_migrations_{secrets.token_hex(6)}"
    asyncio.run(_admin(f"CREATE DATABASE {name}"))
    try:
        yield str(make_url(POSTGRES_URL).set(database=name))
    finally:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def differences(url: str) -> list[object]:
    engine = create_engine(sync_url_of(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": include_name,
                    "include_object": migrate.compared_objects(conn.dialect.name),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(sync_url_of(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_matches_the_models(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    assert differences(empty_url) == []
    assert {"batches", "documents", "attempts", "events", "workers", "chunks"} <= tables(empty_url)


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    migrate.downgrade(empty_url, "0001")
    assert "chunks" not in tables(empty_url)
    assert not {t for t in tables(empty_url) if t.startswith("chunks_fts")}
    migrate.downgrade(empty_url, "base")
    assert tables(empty_url) <= {"alembic_version"}
    migrate.upgrade(empty_url)
    assert differences(empty_url) == []
    assert "chunks" in tables(empty_url)


def test_full_text_objects_exist_at_head(empty_url: str) -> None:
    migrate.upgrade(empty_url)
    engine = create_engine(sync_url_of(empty_url))
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                names = {r[0] for r in conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE name LIKE '%chunks_fts%'"
                )}  # fmt: skip
                assert {"chunks_fts", "trg_chunks_fts_insert", "trg_chunks_fts_delete"} <= names
            else:
                assert (
                    conn.exec_driver_sql(
                        "SELECT to_tsvector('ledger_fts', 'Crème BRÛLÉE')::text"
                    ).scalar()
                    == "'brulee':2 'creme':1"
                )
                index = conn.exec_driver_sql(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunks_tsv'"
                ).scalar()
                assert index is not None and "gin" in index
    finally:
        engine.dispose()
