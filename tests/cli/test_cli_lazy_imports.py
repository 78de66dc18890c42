"""The command line loads only what a command needs: ``ledger --help`` no database library,
web framework, parser or worker pool; a read command no web framework, parser or pool; an
ingest of text files none of the PDF, Word or HTML parsers (in the ledger's process or in
its pool's children). The module lists come from ``python -X importtime`` (never a clock)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.cli.conftest import Cli

# Not needed by any command that only prints help or reads batches.
SERVER_AND_WORK = {
    "litestar",
    "uvicorn",
    "jinja2",
    "multipart",
    "prometheus_client",
    "httpx",
    "numpy",
    "psutil",
    "msgspec",
    "multiprocessing",
    "alembic",
    "asyncpg",
    "pypdfium2",
    "selectolax",
    "docx",
    "lxml",
    "pptx",
    "openpyxl",
    "striprtf",
    "defusedxml",
    "charset_normalizer",
    "ledger.api",
    "ledger.dashboard",
    "ledger.worker",
    "ledger.processors",
    "ledger.embedders",
    # The RAG adapters and their client: only for programs that import them.
    "ledger.client",
    "ledger.integrations",
    "langchain_core",
    "llama_index",
}
# Not needed to print help either.
DATABASE_AND_SETTINGS = {
    "sqlalchemy",
    "aiosqlite",
    "pydantic",
    "pydantic_settings",
    "ledger.app",
    "ledger.queue",
    "ledger.index",
    "ledger.uploads",
    "ledger.access",
    "ledger.monitoring",
    "ledger.db",
    "ledger.settings",
}
PARSERS = {"pypdfium2", "selectolax", "docx", "lxml", "pptx", "openpyxl", "striprtf", "defusedxml"}
# Loaded by the parent when it starts a process-pool child, and only then.
POOL_START = "multiprocessing.popen_spawn_posix"


def imported(stderr: str) -> set[str]:
    """Every module that ``-X importtime`` reported, from any process that wrote it."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def packages(names: set[str], wanted: set[str]) -> set[str]:
    """The members of ``wanted`` that ``names`` holds, themselves or by a submodule."""
    return {w for w in wanted if any(n == w or n.startswith(w + ".") for n in names)}


def run_importtime(cli: Cli, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    return run_importtime_env(cli, {}, *args)


def run_importtime_env(
    cli: Cli, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    proc = subprocess.run(
        [cli.command()[0], "-X", "importtime", *cli.command()[1:], *args],
        env={**cli.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return proc, imported(proc.stderr)


def test_help_imports_nothing_heavy(cli: Cli) -> None:
    proc, names = run_importtime(cli, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ingest" in proc.stdout and "serve" in proc.stdout  # every command is listed
    assert "typer" in names  # the list is real: the parser of the command line is in it
    assert packages(names, SERVER_AND_WORK | DATABASE_AND_SETTINGS) == set()


def test_command_help_imports_nothing_heavy(cli: Cli) -> None:
    # Typer itself builds pydantic adapters for a command's parameters: pydantic may load.
    for command in (["ingest"], ["serve"], ["status"]):
        proc, names = run_importtime(cli, *command, "--help")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Usage: ledger" in proc.stdout
        heavy = SERVER_AND_WORK | (DATABASE_AND_SETTINGS - {"pydantic"})
        assert packages(names, heavy) == set(), command


def test_status_json_loads_no_server_parser_or_pool(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha\n")
    first = cli("ingest", str(docs))
    assert first.code == 0, first.stderr
    batch_id = cli.scalar("SELECT id FROM batches")
    proc, names = run_importtime(cli, "status", batch_id, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'"id": "{batch_id}"' in proc.stdout
    assert "sqlite3" in names  # it did read the database
    # The ledger's records are msgspec Structs (one model for the core and the API), so a
    # command that reads them loads msgspec; help (above) still does not.
    assert packages(names, SERVER_AND_WORK - {"msgspec"}) == set()
    assert "ledger.model" in names


def test_text_only_ingest_loads_no_document_parser(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("plain text, several words long.\n" * 20)
    (docs / "readme.md").write_text("# Title\n\nSome *markdown* text.\n")
    proc, names = run_importtime(cli, "ingest", str(docs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'done'") == 2
    assert cli.scalar("SELECT count(*) FROM chunks") >= 2
    assert "ledger.processors.ingest.pipeline" in names  # the ingest did run the pipeline
    assert packages(names, PARSERS | {"litestar", "uvicorn", "prometheus_client"}) == set()
    assert packages(names, {"httpx", "numpy"}) == set()  # no embedder was asked for
    # Small text files are decoded in the worker's own process: no pool child was started.
    assert POOL_START not in names


def test_large_text_is_processed_in_the_pool(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.txt").write_text("a line of a large text file\n" * 20_000)  # 560 kB
    proc, names = run_importtime(cli, "ingest", str(docs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'done'") == 1
    assert POOL_START in names
    assert packages(names, PARSERS) == set()


def test_html_ingest_loads_the_html_parser_only(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "page.html").write_text("<html><body><p>Hello from a page.</p></body></html>\n")
    proc, names = run_importtime(cli, "ingest", str(docs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'done'") == 1
    assert packages(names, PARSERS) == {"selectolax"}
    assert POOL_START in names  # HTML is parsed by a C library: in a pool child


def test_office_parsers_load_with_the_first_document_of_their_type(
    cli: Cli, tmp_path: Path
) -> None:
    from tests.ingest import office_fixtures as of

    docs = tmp_path / "docs"
    docs.mkdir()
    of.make_rtf(docs / "memo.rtf", ["A memo in rich text."])
    proc, names = run_importtime(cli, "ingest", str(docs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert packages(names, PARSERS) == {"striprtf"}
    of.make_pptx(docs / "deck.pptx", [of.Slide("A slide")])
    proc, names = run_importtime(cli, "ingest", str(docs))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cli.scalar("SELECT count(*) FROM documents WHERE status = 'done'") == 2
    # python-pptx parses with lxml; the RTF was done by the first run.
    assert packages(names, PARSERS) == {"pptx", "lxml"}


# A status read of a SQLite ledger runs the status statements on Python's sqlite3 driver,
# takes the settings it needs without pydantic, and converts its arguments without the
# pydantic adapters of the command-line parser: neither library is loaded.
STATUS_READ_NEEDS_NOT = {"sqlalchemy", "pydantic", "pydantic_core", "pydantic_settings"}
# What a status read of a SQLite ledger does without: the rest of the core, the asyncio
# engine (and the ORM SQLAlchemy's asyncio extension loads), and the other commands' modules.
STATUS_NEEDS_NOT = {
    "ledger.app",
    "ledger.db.engine",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
    "aiosqlite",
    "ledger.cli.ingest",
    "ledger.cli.ops",
    "ledger.cli.webhooks",
}


def test_status_reads_sqlite_without_the_core_sqlalchemy_or_pydantic(
    cli: Cli, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha\n")
    assert cli("ingest", str(docs)).code == 0
    batch_id = cli.scalar("SELECT id FROM batches")
    url = f"sqlite:///{cli.home / 'ledger.db'}"
    for args in (
        ["status", batch_id, "--json"],
        ["--home", str(cli.home), "status", batch_id],
        ["--home", str(cli.home), "-v", "status", batch_id, "--json"],
        ["--database-url", url, "status", batch_id, "--json"],
    ):
        proc, names = run_importtime(cli, *args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert batch_id in proc.stdout
        assert "ledger.queue.batch_status" in names and "sqlite3" in names
        # Its records are msgspec Structs (see above); nothing else of the server's.
        assert "ledger.model" in names
        assert packages(names, STATUS_NEEDS_NOT | (SERVER_AND_WORK - {"msgspec"})) == set(), args
        assert packages(names, STATUS_READ_NEEDS_NOT) == set(), args


def test_the_check_sees_pydantic_where_the_full_settings_are_read(cli: Cli) -> None:
    # A value of a setting that only the full settings read plainly (here an empty lease
    # time) sends the command to them: they load pydantic, and they explain the value.
    proc, names = run_importtime_env(cli, {"LEDGER_LEASE_SECONDS": ""}, "status", "x")
    assert proc.returncode == 2 and "LEDGER_LEASE_SECONDS" in proc.stderr
    assert "pydantic_settings" in names
