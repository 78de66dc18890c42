"""The layering rules the code keeps, checked on its source.

Backend differences (SQLite or PostgreSQL) live in ``ledger/db``: a branch on the dialect
anywhere else would scatter them again. The faces (CLI, API, dashboard) talk to the ledger
through the core, never through the database layer's SQL.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ledger"
FACES = ("cli", "api", "dashboard")


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "_migrations" not in p.parts)


def _dialect_branches(path: Path) -> list[int]:
    """Lines that read ``<something>.dialect.name`` or call ``is_postgres``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "name"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "dialect"
        ) or (isinstance(node, ast.Name) and node.id == "is_postgres"):
            lines.append(node.lineno)
    return lines


def test_backend_branches_live_in_the_database_layer() -> None:
    allowed: set[Path] = set()
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in _modules(PACKAGE)
        if (PACKAGE / "db") not in path.parents and path not in allowed
        for line in _dialect_branches(path)
    ]
    assert offenders == []


def test_the_check_sees_a_branch() -> None:
    # The rule above must be able to fail: the database layer itself has branches.
    assert _dialect_branches(PACKAGE / "db" / "dialect.py")


# What writes SQL: the tables and SQLAlchemy's statement builders. Its exception types and
# URL parsing (sqlalchemy.exc, sqlalchemy.engine.make_url) are fine in a face.
_SQL_MODULES = ("ledger.db.models", "sqlalchemy", "sqlalchemy.sql", "sqlalchemy.ext.asyncio")


def _sql_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        found += [name for name in names if name in _SQL_MODULES]
    return found


def test_faces_do_not_import_tables_or_sql() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for face in FACES
        for path in _modules(PACKAGE / face)
        for module in _sql_imports(path)
    ]
    assert offenders == []


def test_the_import_check_sees_sql() -> None:
    assert "sqlalchemy" in _sql_imports(PACKAGE / "index" / "search.py")
