"""A brand-new SQLite database created at the head revision in one transaction.

Running every migration on an empty file took about a third of a second of the first
command on a machine (Alembic loads, and the revisions rebuild tables in batch mode), and
always produces the same database. ``sqlite_head.json`` holds that database as statements:
every object of ``sqlite_master`` as the migrations left its SQL, and every row they
wrote (the leader row, the ``alembic_version`` stamp). Replaying them on an empty file gives
the same objects, with the same SQL, and the same rows; tests/core/test_fresh_sqlite.py
proves it against a database migrated from nothing, and fails when a new migration is not
followed by ``python -m ledger.db.fresh_sqlite`` (which writes the file again).

Only an empty database is created this way; one holding anything, at any revision, is
upgraded through the migrations as before.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger.db.engine import WRITE
from ledger.db.models import HEAD_REVISION

SNAPSHOT = Path(__file__).with_name("sqlite_head.json")

# Objects SQLite makes itself: the AUTOINCREMENT counters' table (its rows are replayed),
# the full-text tables' shadow tables and the indexes behind UNIQUE and PRIMARY KEY.
_OWN_OBJECTS = "sqlite_"


def _load() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return loaded


async def create_at_head(engine: AsyncEngine) -> bool:
    """Create the head revision's schema and rows in the empty SQLite database of
    ``engine``; False, having changed nothing, when it is not SQLite, holds any object, or
    the snapshot is of another revision than this version needs."""
    if engine.dialect.name != "sqlite":
        return False
    snapshot = _load()
    if snapshot["revision"] != HEAD_REVISION:
        return False
    async with engine.connect() as conn:
        conn = await conn.execution_options(**{WRITE: True})
        async with conn.begin():  # the write lock first: two first commands create it once
            existing = await conn.execute(text("SELECT count(*) FROM sqlite_master"))
            if existing.scalar():
                return False
            for statement, parameters in snapshot["statements"]:
                await conn.exec_driver_sql(statement, tuple(parameters or ()))
    return True


def snapshot_of(path: Path) -> dict[str, Any]:
    """The statements that rebuild the SQLite database at ``path`` in an empty file."""
    conn = sqlite3.connect(path)
    try:
        shadow = {row[1] for row in conn.execute("PRAGMA table_list") if row[2] == "shadow"}
        objects = [
            (kind, name, sql)
            for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid"
            )
            if not name.startswith(_OWN_OBJECTS) and name not in shadow
        ]
        # Tables before what is defined on them; in their own order of creation otherwise.
        order = {"table": 0, "index": 1, "view": 2, "trigger": 3}
        objects.sort(key=lambda item: order[item[0]])
        statements: list[tuple[str, list[Any] | None]] = [(sql, None) for _, _, sql in objects]
        tables = [name for kind, name, sql in objects if kind == "table" and "VIRTUAL" not in sql]
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
            tables.append("sqlite_sequence")
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid')
            columns = ", ".join(f'"{d[0]}"' for d in cursor.description)
            marks = ", ".join("?" for _ in cursor.description)
            for row in cursor:
                if any(isinstance(value, bytes) for value in row):
                    raise ValueError(f"a row of {table} holds bytes, which JSON cannot")
                insert = f'INSERT INTO "{table}" ({columns}) VALUES ({marks})'
                statements.append((insert, list(row)))
        [(revision,)] = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()
    return {"revision": revision, "statements": statements}


def write_snapshot(folder: Path) -> Path:
    """Migrate an empty database in ``folder`` from nothing and write its snapshot."""
    from ledger.db import migrate

    path = folder / "head.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    snapshot = snapshot_of(path)
    SNAPSHOT.write_text(json.dumps(snapshot, indent=1) + "\n", encoding="utf-8")
    return SNAPSHOT


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        print(f"wrote {write_snapshot(Path(scratch))}", file=sys.stderr)
