"""An empty SQLite database created at the head revision in one step is the database that
running every migration makes: the same objects with the same SQL, the same rows, the same
stamp. A database holding anything is left to the migrations.

The migrations themselves write the named constraints of a table that Alembic's batch mode
copies (``attempts``) in an order that follows the interpreter's string hashing, so two
migrated databases differ in that order; the comparison takes a table's ``CONSTRAINT``
clauses as a set and everything else (columns in order, every other object) as text.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ledger.cli.app import open_ledger
from ledger.db import fresh_sqlite, migrate
from ledger.db.engine import create_engine
from ledger.db.models import HEAD_REVISION
from ledger.settings import Settings


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _normalized(sql: str | None) -> str:
    """``sql`` with the named constraints of a CREATE TABLE in sorted order."""
    if not sql or not sql.startswith("CREATE TABLE"):
        return sql or ""
    lines = sql.split("\n")
    clauses = sorted(line.rstrip(", ") for line in lines if line.lstrip().startswith("CONSTRAINT "))
    others = [line.rstrip(", ") for line in lines if not line.lstrip().startswith("CONSTRAINT ")]
    return "\n".join(others[:-1] + clauses + others[-1:])


def _statements(snapshot: dict[str, Any]) -> list[str]:
    return [_normalized(sql) + repr(values) for sql, values in snapshot["statements"]]


def _contents(path: Path) -> dict[str, Any]:
    """Everything a database holds but where its pages are: every object of
    ``sqlite_master`` (shadow tables, automatic indexes and ``sqlite_sequence`` too) and
    every row of every table, ``alembic_version`` included."""
    conn = sqlite3.connect(path)
    try:
        objects = sorted(
            (kind, name, table, _normalized(sql))
            for kind, name, table, sql in conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master"
            )
        )
        rows = {
            name: sorted(map(repr, conn.execute(f'SELECT * FROM "{name}"')))
            for kind, name, _, _ in objects
            if kind == "table"
        }
        pragmas = {
            name: conn.execute(f"PRAGMA {name}").fetchall()
            for name in ("user_version", "application_id", "foreign_key_check")
        }
    finally:
        conn.close()
    return {"objects": objects, "rows": rows, "pragmas": pragmas}


async def _migrated(folder: Path) -> Path:
    path = folder / "migrated.db"
    await migrate.upgrade_async(_url(path))
    return path


async def _created(path: Path) -> bool:
    engine = create_engine(Settings(database_url=_url(path)))
    try:
        return await fresh_sqlite.create_at_head(engine)
    finally:
        await engine.dispose()


async def test_a_database_created_at_head_equals_one_migrated_from_nothing(
    tmp_path: Path,
) -> None:
    migrated = _contents(await _migrated(tmp_path))
    assert await _created(tmp_path / "created.db")
    created = _contents(tmp_path / "created.db")
    assert created["objects"] == migrated["objects"]
    assert created["rows"] == migrated["rows"]
    assert created["pragmas"] == migrated["pragmas"]
    assert created["rows"]["alembic_version"] == [repr((HEAD_REVISION,))]
    assert any(kind == "trigger" for kind, *_ in created["objects"])
    assert any(kind == "view" for kind, *_ in created["objects"])


async def test_the_snapshot_is_what_the_migrations_make_now(tmp_path: Path) -> None:
    # A new migration without `python -m ledger.db.fresh_sqlite` fails here.
    stored = json.loads(fresh_sqlite.SNAPSHOT.read_text(encoding="utf-8"))
    regenerated = json.loads(json.dumps(fresh_sqlite.snapshot_of(await _migrated(tmp_path))))
    assert stored["revision"] == regenerated["revision"] == HEAD_REVISION
    # In any order: batch mode also recreates a copied table's indexes in hashing order.
    assert sorted(_statements(stored)) == sorted(_statements(regenerated))


async def test_a_database_holding_anything_is_left_to_the_migrations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await migrate.upgrade_async(_url(path), "0021")
    before = _contents(path)
    assert not await _created(path)
    assert _contents(path) == before
    unrelated = tmp_path / "unrelated.db"
    with sqlite3.connect(unrelated) as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    assert not await _created(unrelated)


async def test_the_first_command_creates_the_database_and_upgrades_an_old_one(
    tmp_path: Path,
) -> None:
    reference = _contents(await _migrated(tmp_path))
    for name, revision in (("fresh.db", None), ("old.db", "0019")):
        path = tmp_path / name
        if revision is not None:
            await migrate.upgrade_async(_url(path), revision)
        ledger = await open_ledger(Settings(database_url=_url(path)))
        await ledger.close()
        contents = _contents(path)
        assert contents["objects"] == reference["objects"], name
        assert contents["rows"] == reference["rows"], name


@pytest.mark.parametrize("url", ["postgresql+asyncpg://nobody@127.0.0.1:1/none"])
async def test_postgresql_is_never_created_this_way(url: str) -> None:
    engine = create_engine(Settings(database_url=url))
    try:
        assert not await fresh_sqlite.create_at_head(engine)
    finally:
        await engine.dispose()
