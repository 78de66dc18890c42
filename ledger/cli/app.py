"""The ``ledger`` command: global options, settings, opening the ledger, and error handling.

Every command is a thin face over :class:`ledger.app.Ledger`: it validates what the
user typed, calls the ledger, and shows the answer. User mistakes end as one line on stderr
with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

try:  # typer 0.2x carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from ledger import __version__
from ledger.cli.help_format import hide_argument_types
from ledger.cli.plain_values import pass_plain_values_through
from ledger.database_url import migrates_on_first_use
from ledger.database_url import sqlite_file as sqlite_file_at
from ledger.errors import DatabaseWriteFailed, InvalidInput, LedgerError, ServiceUnavailable
from ledger.home import default_home

# Start-up cost: ``ledger --help`` must not load the database, settings, rich or anything
# heavier (tests/cli/test_cli_lazy_imports.py). These are imported where they are used;
# command modules follow the same rule (docs/benchmarks.md, "Start-up and install").
if TYPE_CHECKING:
    from pydantic import ValidationError
    from rich.console import Console

    from ledger.app import Ledger
    from ledger.settings import Settings
    from ledger.settings_env import ReadSettings

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # something went wrong, or some documents failed
EXIT_USAGE = 2  # the command line or the configuration is wrong
EXIT_DATABASE_WRITE = 3  # the database refused writes (disk full, read-only, I/O error)
EXIT_UNAVAILABLE = 4  # a service the command calls (an embedding endpoint) kept failing
EXIT_INTERRUPTED = 130  # stopped by Ctrl-C (128 + SIGINT), as shells do

DEFAULT_HOME = default_home()

# What --help says about configuration. Kept short; docs/cli.md has the full list.
CONFIG_HELP = (
    "Configuration comes from LEDGER_* environment variables; --home and --database-url "
    f"override them. LEDGER_HOME is the data folder (default {DEFAULT_HOME}). "
    "LEDGER_DATABASE_URL is the database: by default the SQLite file ledger.db in LEDGER_HOME, "
    "created and migrated on first use; PostgreSQL (postgresql://...) needs "
    "`ledger db upgrade`. Others: LEDGER_CONCURRENCY, LEDGER_MAX_ATTEMPTS, "
    "LEDGER_LEASE_SECONDS, LEDGER_BACKOFF_BASE_SECONDS, LEDGER_POLL_SECONDS, "
    "LEDGER_SHUTDOWN_GRACE_SECONDS and more (docs/cli.md).\n\n"
    "Exit codes: 0 success; 1 error, or some documents failed; 2 usage or configuration "
    "error; 3 the database cannot be written (disk full?); 130 interrupted."
)


def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Without a terminal rich would assume 80 columns and fold tables; logs have room.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(stderr=stderr, highlight=False, width=width, soft_wrap=stderr)


class _LazyConsole:
    """A rich console made on first use: importing rich costs every command, even --help."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def real(self) -> Console:
        if self._console is None:
            self._console = _console(self._stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


out = cast("Console", _LazyConsole(stderr=False))
err = cast("Console", _LazyConsole(stderr=True))


def real_console(console: Console) -> Console:
    """The rich console behind ``out`` or ``err``, for a rich object that takes a console
    (a progress bar enters it as a context manager, which the stand-in cannot be)."""
    return console.real() if isinstance(console, _LazyConsole) else console


class CliError(Exception):
    """A failure to report to the user as one line, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class GlobalOptions:
    database_url: str | None = None
    home: Path | None = None
    verbose: int = 0

    def settings(self) -> Settings:
        """The settings in force: environment, then the global flags on top."""
        from pydantic import ValidationError

        from ledger.settings import Settings

        overrides: dict[str, Any] = {}
        if self.database_url is not None:
            overrides["database_url"] = self.database_url
        if self.home is not None:
            overrides["home"] = self.home
        try:
            return Settings(**overrides)
        except ValidationError as exc:
            raise CliError(describe_validation_error(exc, overrides), EXIT_USAGE) from exc

    def read_settings(self) -> ReadSettings | Settings:
        """What a command that only reads needs of the settings in force, resolved without
        pydantic where every value is plain; else the full settings (which explain errors)."""
        from ledger.settings_env import read_settings

        found = read_settings(home=self.home, database_url=self.database_url)
        return found if found is not None else self.settings()


def describe_validation_error(exc: ValidationError, flags: dict[str, Any]) -> str:
    """One line naming the setting that is wrong and why."""
    error = exc.errors()[0]
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = error.get("loc") or ()
    if not loc:
        return f"invalid configuration: {message}"
    field = str(loc[0])
    where = f"--{field.replace('_', '-')}" if field in flags else f"LEDGER_{field.upper()}"
    value = error.get("input")
    shown = f" (got {value!r})" if isinstance(value, str | int | float) and value != "" else ""
    return f"invalid {where}{shown}: {message}"


app = typer.Typer(
    name="ledger",
    help="A job ledger for batch document processing: ingest folders, watch progress, "
    "retry failures, resume after any interruption.",
    epilog=CONFIG_HELP,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    pretty_exceptions_enable=False,
    # Plain help: the rich layout prints a type column (<bool> beside every flag,
    # <list[Path]> beside PATH) that tells a reader nothing the metavars do not.
    rich_markup_mode=None,
)
hide_argument_types()
pass_plain_values_through()


def _version(value: bool) -> None:
    if value:
        out.print(f"ledger {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        metavar="URL",
        help="Database URL (LEDGER_DATABASE_URL). Default: SQLite file in LEDGER_HOME.",
        show_default=False,
    ),
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            metavar="DIR",
            help=f"Data folder (LEDGER_HOME). Default: {DEFAULT_HOME}.",
            show_default=False,
        ),
    ] = None,
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="Log more (-v info, -vv debug) on stderr."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    ctx.obj = GlobalOptions(database_url=database_url, home=home, verbose=verbose)
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def shown_url(url: str) -> str:
    """The database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given: it has no password to hide
        return url


async def open_ledger(settings: Settings, *, migrate: bool = True) -> Ledger:
    """Connect to the database and check its schema.

    On SQLite the schema is created or upgraded on the spot (``migrate``), so the first
    command on a fresh machine just works. PostgreSQL is shared and upgrading it is a
    deliberate act: there the user is told to run ``ledger db upgrade``.
    """
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from ledger.app import Ledger
    from ledger.db.engine import create_engine
    from ledger.db.runner import SchemaOutOfDate

    where = shown_url(settings.url)
    try:
        engine = create_engine(settings)
        async with engine.connect():
            pass
    except (DBAPIError, OSError) as exc:
        raise CliError(f"cannot open the database {where}: {_reason(exc)}") from exc
    except SQLAlchemyError as exc:  # a malformed URL, an unknown driver
        raise CliError(f"cannot use the database {where}: {_reason(exc)}", EXIT_USAGE) from exc
    ledger = Ledger(engine, settings)
    try:
        try:
            await ledger.check_schema()
        except SchemaOutOfDate:
            if not (migrate and migrates_on_first_use(settings.url)):
                raise
            from ledger.db.fresh_sqlite import create_at_head

            # An empty database is created at the head revision in one step; one holding
            # anything is upgraded by Alembic, loaded only then: it slows every start.
            if not await create_at_head(engine):
                from alembic.util import CommandError

                from ledger.db import migrate as migrations

                try:
                    await migrations.upgrade_async(settings.url)
                except CommandError as exc:
                    raise CliError(
                        f"cannot migrate {where}: {exc} (is it from a newer version of ledger?)"
                    ) from exc
            await ledger.check_schema()
    except BaseException:
        await ledger.close()
        raise
    return ledger


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.strerror:
        return f"{orig.strerror}: {orig.filename}" if orig.filename else orig.strerror
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def sqlite_file(settings: Settings | ReadSettings) -> Path | None:
    """The SQLite database file the settings name, or None (PostgreSQL, in memory)."""
    return sqlite_file_at(settings.url)


def require_database(settings: Settings | ReadSettings) -> None:
    """Refuse a SQLite database file that does not exist, creating nothing.

    Commands that only look at or change existing batches have nothing to do on a fresh
    database; a mistyped ``--database-url`` must not leave new folders and files behind.
    """
    path = sqlite_file(settings)
    if path is not None and not path.exists():
        raise CliError(
            f"no ledger database at {path} (ledger ingest, ledger serve or "
            "ledger db upgrade creates one)",
            EXIT_USAGE,
        )


def run_with_ledger(
    ctx: typer.Context,
    work: Callable[[Ledger], Awaitable[T]],
    *,
    migrate: bool = True,
    create: bool = False,
) -> T:
    """Open the ledger, run ``work`` with it, close it; all in one event loop.

    Without ``create`` a SQLite database that does not exist is an error (exit code 2).
    """
    settings = options(ctx).settings()
    if not create:
        require_database(settings)

    async def main() -> T:
        ledger = await open_ledger(settings, migrate=migrate)
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    import asyncio  # not at the top: a status read of SQLite needs no event loop

    return asyncio.run(main())


def _error(message: str) -> None:
    prefix = "[bold red]error:[/] " if err.is_terminal else "error: "
    err.print(prefix, end="")
    err.print(message, markup=False)


def _tolerate_undecodable_output() -> None:
    """Text that is not UTF-8 (a file name from a row written by another program) is
    printed escaped instead of ending the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="backslashreplace")


# Importing a command module registers its commands on ``app``. A command named here runs
# with only its own module imported (what the others import is start-up time it does not
# need); anything else (help, a group, a typo) imports every module, in this order.
COMMAND_MODULES = (
    "batches",
    "batch_settings",
    "deletion",
    "export",
    "ingest",
    "maintain",
    "ops",
    "webhooks",
    "workers",
)
_BATCH_COMMANDS = ("status", "failures", "retry", "pause", "resume", "cancel", "search")
OWN_MODULE = {
    **dict.fromkeys(_BATCH_COMMANDS, "batches"),
    "delete": "deletion",
    "export": "export",
    "ingest": "ingest",
    "maintain": "maintain",
    "workers": "workers",
}
# Global options that take a value (the command name comes after it).
_VALUED_OPTIONS = ("--database-url", "--home")


def command_modules(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules to import for the command line ``argv``."""
    args = iter(argv)
    for arg in args:
        if arg in _VALUED_OPTIONS:
            next(args, None)
        elif arg in ("-h", "--help", "--version"):
            break
        elif not arg.startswith("-"):
            own = OWN_MODULE.get(arg)
            return COMMAND_MODULES if own is None else (own,)
    return COMMAND_MODULES


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (what ``main`` exits with)."""
    for module in command_modules(sys.argv[1:] if argv is None else argv):
        importlib.import_module(f"ledger.cli.{module}")
    _tolerate_undecodable_output()
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name="ledger",
            standalone_mode=False,
        )
    except click_errors.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.format_message() + "\n")
        return EXIT_USAGE
    except click_errors.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _error(exc.format_message().replace("\n", " ") + hint)
        return EXIT_USAGE
    except click_errors.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except CliError as exc:
        _error(exc.message)
        return exc.code
    except InvalidInput as exc:
        _error(exc.message)
        return EXIT_USAGE
    except DatabaseWriteFailed as exc:
        _error(exc.message)
        return EXIT_DATABASE_WRITE
    except ServiceUnavailable as exc:
        _error(exc.message)
        return EXIT_UNAVAILABLE
    except LedgerError as exc:  # SchemaOutOfDate among them
        _error(exc.message)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`ledger batches | head`): not an error worth a message.
        sys.stderr.close()
        return EXIT_FAILED
    except Exception as exc:
        code = _database_error(exc)
        if code is None:
            raise
        return code
    return result if isinstance(result, int) else EXIT_OK


def _database_error(exc: Exception) -> int | None:
    """Report a database driver error and return its exit code; None for anything else."""
    if "sqlalchemy" not in sys.modules:  # not loaded: the error cannot be one of its own
        return None
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    from ledger.db.write_failures import is_write_failure, write_failed

    if is_write_failure(exc):
        _error(write_failed(exc).message)
        return EXIT_DATABASE_WRITE
    _error(f"database error: {_reason(exc)}")
    return EXIT_FAILED
