"""The layering rules the code keeps, checked on its source.

Backend differences (SQLite or PostgreSQL) live in ``ledger/db``: a branch on the dialect
anywhere else would scatter them again. The faces (CLI, API, dashboard) talk to the ledger
through the core, never through the database layer's SQL.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ledger"
FACES = ("cli", "api", "dashboard")


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "_migrations" not in p.parts)


# Names whose only use is to ask which database this is.
_DIALECT_QUESTIONS = {"is_postgres", "is_sqlite", "get_backend_name", "dialect"}
# A string that names a database (``"sqlite"``, ``"postgresql+asyncpg://..."``).
_BACKEND_NAME = re.compile(r"^(sqlite|postgres(ql)?)(\+\w+)?(:|$)", re.IGNORECASE)
# Besides ledger/db, the modules that may tell the databases apart, and why: the URL an
# operator gives is checked and turned into a driver's before any connection exists.
_NAMED_EXCEPTIONS = {PACKAGE / "database_url.py"}


def _names_a_backend(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(_BACKEND_NAME.match(node.value))
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_backend(item) for item in node.elts)
    return False


def _dialect_branches(path: Path) -> list[int]:
    """Lines that ask which database this is: ``.dialect`` (``.dialect.name``),
    ``is_postgres``/``is_sqlite``, ``get_backend_name()``, a comparison with a database's
    name, or ``.startswith("sqlite")``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        asks = (
            (isinstance(node, ast.Attribute) and node.attr in _DIALECT_QUESTIONS)
            or (isinstance(node, ast.Name) and node.id in _DIALECT_QUESTIONS - {"dialect"})
            or (
                isinstance(node, ast.Compare)
                and any(_names_a_backend(side) for side in [node.left, *node.comparators])
            )
            or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("startswith", "endswith")
                and any(_names_a_backend(arg) for arg in node.args)
            )
        )
        if asks and isinstance(node, ast.expr):  # every kind asked about is an expression
            lines.append(node.lineno)
    return sorted(set(lines))


def test_backend_branches_live_in_the_database_layer() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in _modules(PACKAGE)
        if (PACKAGE / "db") not in path.parents and path not in _NAMED_EXCEPTIONS
        for line in _dialect_branches(path)
    ]
    assert offenders == []


def test_the_check_sees_a_branch(tmp_path: Path) -> None:
    # The rule above must be able to fail: each way of asking is seen, and the places
    # allowed to ask do ask.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "if conn.dialect.name == 'postgresql':\n    pass\n"  # 1
        "if is_postgres(conn):\n    pass\n"  # 3
        "postgres = is_sqlite(settings)\n"  # 5
        "local = url.get_backend_name() != 'sqlite'\n"  # 6
        "if settings.url.startswith(('sqlite+aiosqlite://', 'x')):\n    pass\n"  # 7
        "if name in ('postgres', 'postgresql'):\n    pass\n"  # 9
        "engine = engine.dialect\n"  # 11
        "label = 'sqlite is a database'\n"  # 12: prose, not a comparison
        "found = name == 'sqlitebrowser'\n"  # 13: not a database's name
    )
    assert _dialect_branches(sample) == [1, 3, 5, 6, 7, 9, 11]
    assert _dialect_branches(PACKAGE / "db" / "backends" / "__init__.py")
    assert all(_dialect_branches(path) for path in _NAMED_EXCEPTIONS)


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
