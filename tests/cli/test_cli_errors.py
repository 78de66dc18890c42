"""User mistakes end as one line on stderr and a non-zero exit code, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Result


def assert_one_line_error(result: Result, code: int) -> str:
    assert result.code == code, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["status", "no-such-batch"], 1, "no batch 'no-such-batch'"),
        (["failures", "no-such-batch"], 1, "no batch"),
        (["pause", "no-such-batch"], 1, "no batch"),
        (["retry", "no-such-batch"], 1, "no batch"),
        (["ingest", "--bogus", "."], 2, "No such option: --bogus"),
        (["ingest", "/no/such/path"], 2, "/no/such/path"),
        (["ingest"], 2, "Missing argument"),
        (["batches", "--limit", "x"], 2, "--limit"),
        (["batches", "--state", "sleeping"], 2, "--state"),
        (["ingest", ".", "--processor", "nope"], 2, "unknown processor 'nope'"),
        (["ingest", ".", "-p", "sleep", "-o", "seconds=-3"], 2, "seconds"),
        (["ingest", ".", "-p", "noop", "-o", "novalue"], 2, "KEY=VALUE"),
        (["ingest", ".", "-p", "no.such.module:fn"], 2, "cannot import"),
        (["ingest", ".", "-o", "chunk_size=1"], 2, "chunk_size must be at least 64"),
        (["ingest", ".", "-o", "chunk_size=100", "-o", "chunk_overlap=60"], 2, "half of"),
        (["ingest", ".", "-o", "embedder=nope"], 2, "unknown embedder profile 'nope'"),
        (["ingest", ".", "-p", "sleep", "-o", "colour=red"], 2, "unknown sleep options"),
        (["nonsense"], 2, "No such command"),
    ],
)
def test_user_mistakes_are_one_line(
    cli: Cli, tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    args = [str(tmp_path) if a == "." else a for a in args]
    if args[0] in ("status", "failures", "pause", "retry"):
        # These only read or change existing batches: they need a database to look in.
        assert cli("db", "upgrade").code == 0
    line = assert_one_line_error(cli(*args), code)
    assert needle in line


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LEDGER_LEASE_SECONDS": "-1"}, "LEDGER_LEASE_SECONDS"),
        ({"LEDGER_MAX_ATTEMPTS": "many"}, "LEDGER_MAX_ATTEMPTS"),
        ({"LEDGER_DATABASE_URL": "mysql://x/y"}, "LEDGER_DATABASE_URL"),
        ({"LEDGER_HEARTBEAT_SECONDS": "999"}, "LEDGER_HEARTBEAT_SECONDS"),
        ({"LEDGER_PROCESSORS": "alias=nocolon"}, "LEDGER_PROCESSORS"),
    ],
)
def test_bad_configuration_is_a_usage_error(cli: Cli, env: dict[str, str], needle: str) -> None:
    line = assert_one_line_error(cli("batches", env=env), 2)
    assert needle in line


def test_bad_database_url_flag_names_the_flag(cli: Cli) -> None:
    line = assert_one_line_error(cli("--database-url", "mysql://x/y", "batches"), 2)
    assert "--database-url" in line


def test_unreachable_database_hides_the_password(cli: Cli) -> None:
    url = "postgresql+asyncpg://user:hunter2@127.0.0.1:1/ledger"
    line = assert_one_line_error(cli("--database-url", url, "batches", timeout=60), 1)
    assert "cannot open the database" in line
    assert "hunter2" not in line


def test_home_that_is_a_file(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = assert_one_line_error(cli("--home", str(blocker), "keys", "create", "--tenant", "t"), 1)
    assert "cannot open the database" in line
    # A command that only reads finds no database there, and creates nothing.
    line = assert_one_line_error(cli("--home", str(blocker), "batches"), 2)
    assert "no ledger database at" in line
    assert blocker.read_text() == "not a folder"


def test_schema_newer_than_this_version(cli: Cli) -> None:
    assert cli("db", "upgrade").code == 0  # creates and migrates the database
    cli.sql("UPDATE alembic_version SET version_num = 'ffff_from_the_future'")
    line = assert_one_line_error(cli("batches"), 1)
    assert "ffff_from_the_future" in line


def test_no_arguments_shows_help(cli: Cli) -> None:
    result = cli()
    assert result.code == 2
    assert "Usage: ledger" in result.stdout
    assert "Traceback" not in result.stderr


def test_help_documents_configuration_and_commands(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for word in ("LEDGER_DATABASE_URL", "LEDGER_HOME", "--database-url", "--home"):
        assert word in result.stdout
    commands = ["ingest", "batches", "status", "failures", "retry", "pause", "resume", "cancel"]
    commands += ["search", "worker", "serve", "keys", "db"]
    for command in commands:
        assert command in result.stdout
        sub = cli(command, "--help")
        assert sub.code == 0, (command, sub.stderr)
        assert "Usage: ledger" in sub.stdout


def test_bad_embedder_profiles_are_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    line = assert_one_line_error(cli("ingest", str(tmp_path), env={"LEDGER_EMBEDDERS": "{x"}), 2)
    assert "LEDGER_EMBEDDERS" in line
