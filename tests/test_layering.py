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
    # db/prepared.py keys its statement cache by dialect (a key, not a branch).
    allowed = {PACKAGE / "core" / "prepared.py"}
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


# What writes SQL: the tables (assembled in ledger.db.models, defined by domain under
# ledger.db.tables) and SQLAlchemy's statement builders. Its exception types and URL parsing
# (sqlalchemy.exc, sqlalchemy.engine.make_url) are fine in a face.
_SQL_MODULES = ("ledger.db.models", "sqlalchemy", "sqlalchemy.sql", "sqlalchemy.ext.asyncio")
_TABLE_PACKAGE = "ledger.db.tables"


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
        found += [
            name
            for name in names
            if name in _SQL_MODULES
            or name == _TABLE_PACKAGE
            or name.startswith(_TABLE_PACKAGE + ".")
        ]
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
    assert "ledger.db.tables.queue" in _sql_imports(PACKAGE / "db" / "models.py")


# Processors are pure with respect to the ledger: what they need from it comes with the
# document (its dedup facts), what they produce goes back as data (their outcome). Nothing
# under ledger/processors imports the storage layers, not even for type checking.
_STORAGE_PACKAGES = (
    "ledger.app",
    "ledger.db",
    "ledger.queue",
    "ledger.index",
    "ledger.uploads",
    "ledger.access",
)


def _storage_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.module == "ledger":  # from ledger import core
                names = [f"ledger.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [
            name
            for name in names
            if any(name == p or name.startswith(p + ".") for p in _STORAGE_PACKAGES)
        ]
    return found


def test_processors_do_not_import_the_ledger_storage() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}: {module}"
        for path in _modules(PACKAGE / "processors")
        for module in _storage_imports(path)
    ]
    assert offenders == []


def test_the_processor_check_sees_storage_imports(tmp_path: Path) -> None:
    # The rule above must be able to fail: the worker imports the index, and each way of
    # naming a storage package is seen.
    assert "ledger.index" in _storage_imports(PACKAGE / "worker" / "outcome_prep.py")
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import ledger.db.models\n"
        "from ledger import app\n"
        "from ledger.queue.claim import claim\n"
        "if TYPE_CHECKING:\n    from ledger.index import search\n"
        "import ledger.applike\n"
    )
    assert _storage_imports(sample) == [
        "ledger.db.models",
        "ledger.app",
        "ledger.queue.claim",
        "ledger.index",
    ]
