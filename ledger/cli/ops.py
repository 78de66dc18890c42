"""Running the ledger: ``worker``, ``serve``, ``keys`` and ``db`` (migrations)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import render
from ledger.cli.app import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    app,
    err,
    open_ledger,
    options,
    out,
    require_database,
    run_with_ledger,
    shown_url,
    sqlite_file,
)
from ledger.cli.ports import port_problem
from ledger.cli.signals import StopSignals
from ledger.database_url import migrates_on_first_use

# The worker, the server, rich and the database load when a command runs, not for --help.
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import ApiKey
    from ledger.settings import Settings
    from ledger.worker.runtime import Worker
    from ledger.worker.stats import WorkerStats

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts (stable keys).")

log = logging.getLogger("ledger.cli")

# ---------------------------------------------------------------------------- worker


@app.command("worker")
def worker_command(
    ctx: typer.Context,
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        max=10_000,
        metavar="N",
        help="Documents processed at once. Default: LEDGER_CONCURRENCY (16).",
        show_default=False,
    ),
    batch: Annotated[
        list[str] | None,
        typer.Option(
            "--batch", "-b", metavar="ID", help="Only these batches (repeatable). Default: all."
        ),
    ] = None,
    burst: bool = typer.Option(
        False, "--burst", help="Exit when nothing is due instead of waiting for more work."
    ),
    processor: Annotated[
        list[str] | None,
        typer.Option(
            "--processor",
            "-p",
            metavar="NAME",
            help="Also run this processor (module:function or entry point; repeatable), "
            "besides the built-ins, LEDGER_PROCESSORS and installed entry points.",
        ),
    ] = None,
) -> None:
    """Process documents of any batch in the database until stopped.

    Run as many as you like, on as many machines as share the database. Each worker takes
    only batches whose processor it can run (imported and checked at start). SIGTERM or
    Ctrl-C stops gracefully (documents in flight finish); a second signal stops at once.
    """
    settings = options(ctx).settings()
    if options(ctx).verbose == 0:
        logging.getLogger("ledger").setLevel(logging.INFO)
    asyncio.run(_work(settings, concurrency, batch or None, burst, processor or []))


async def _work(
    settings: Settings,
    concurrency: int | None,
    batch_ids: list[str] | None,
    burst: bool,
    processors: list[str],
) -> None:
    from ledger.cli.runtime import make_worker
    from ledger.sinks.profiles import SinkProfileError, profiles_for

    try:
        profiles_for(settings)  # a bad LEDGER_SINKS stops the start, with its message
    except SinkProfileError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    ledger = await open_ledger(settings)
    try:
        worker = make_worker(
            ledger, concurrency=concurrency, batch_ids=batch_ids, processors=processors
        )

        def first(signum: int) -> None:
            err.print(
                "Stopping after the documents in flight finish (signal again to stop at once)…",
                markup=False,
            )
            worker.stop(graceful=True)

        def second(signum: int) -> None:
            err.print("Stopping now.", markup=False)
            worker.stop(graceful=False)

        with StopSignals(asyncio.get_running_loop(), first=first, second=second):
            err.print(
                f"Worker started on {shown_url(settings.url)} "
                f"(concurrency {concurrency or settings.concurrency}"
                + (f", batches {', '.join(batch_ids)}" if batch_ids else ", all batches")
                + ("; burst" if burst else "; Ctrl-C to stop")
                + ")",
                markup=False,
            )
            stats = await _run_with_maintenance(worker, ledger, burst=burst)
        err.print(f"Worker stopped. {_describe_stats(stats)}".strip(), markup=False)
    finally:
        await ledger.close()


async def _run_with_maintenance(worker: Worker, ledger: Ledger, *, burst: bool) -> WorkerStats:
    """Run the worker and the sink stage; unless in burst mode, the maintenance loop beside
    them (one process at a time runs a pass: the others skip their turn). In burst mode the
    sink stage drains what is due once the documents are done."""
    from ledger.sinks.stage import SinkStage

    stage = SinkStage(ledger)
    if burst:
        stats = await worker.run(burst=True)
        try:
            await stage.run_once()  # and what the documents owe the sinks
        finally:
            await stage.close()
        return stats
    from ledger.maintenance.run import run_forever, runner_name

    maintenance = asyncio.create_task(
        run_forever(
            ledger,
            runner=runner_name("worker"),
            interval=ledger.settings.maintenance_interval_seconds,
        ),
        name="ledger-maintenance",
    )
    sinks = asyncio.create_task(stage.run(), name="ledger-sinks")
    try:
        return await worker.run(burst=False)
    finally:
        for chore in (maintenance, sinks):
            chore.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chore


def _describe_stats(stats: Any) -> str:
    fields = ("done", "failed", "skipped", "retried", "released", "lost")
    parts = [f"{getattr(stats, f)} {f}" for f in fields if isinstance(getattr(stats, f, None), int)]
    return ", ".join(parts)


# ---------------------------------------------------------------------------- serve


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", metavar="HOST", help="Address to listen on."),
    port: int = typer.Option(
        8000, "--port", metavar="PORT", min=1, max=65535, help="Port to listen on."
    ),
    no_workers: bool = typer.Option(
        False, "--no-workers", help="Serve the API only; run `ledger worker` separately."
    ),
) -> None:
    """Run the HTTP API (and, unless --no-workers, workers in the same process)."""
    from ledger.api.app import serve

    settings = options(ctx).settings()
    if problem := port_problem(host, port):
        hint = " (is another `ledger serve` running? choose another with --port)"
        raise CliError(problem + hint, EXIT_FAILED)

    async def prepare(ledger: Ledger) -> None:
        return None

    run_with_ledger(ctx, prepare, create=True)  # connects, checks and (SQLite) migrates the schema
    try:
        settings = settings.model_copy(update={"host": host, "port": port})
        serve(settings, run_workers=not no_workers)
    except ValueError as exc:  # for example: no auth on a public address
        raise CliError(str(exc), EXIT_USAGE) from exc


# ---------------------------------------------------------------------------- keys


class KeyRole(enum.StrEnum):
    tenant = "tenant"
    operator = "operator"


ROLE_OPTION = typer.Option(
    KeyRole.tenant,
    "--role",
    help="tenant: its tenant's batches only; operator: also process-wide /metrics.",
)


keys_app = typer.Typer(
    help="API keys: each key belongs to one tenant and sees only its batches.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "role": key.role,
        "prefix": key.prefix,
        "created_at": render.iso(key.created_at),
        "revoked_at": render.iso(key.revoked_at) if key.revoked_at else None,
    }


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="NAME", help="Tenant the key acts for."),
    role: KeyRole = ROLE_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Create an API key for a tenant. The key is shown once: store it now."""

    async def work(ledger: Ledger) -> tuple[str, str]:
        return await ledger.keys.create(tenant, role=role.value)

    key_id, secret = run_with_ledger(ctx, work, create=True)
    if json_output:
        render.emit_json({"id": key_id, "tenant": tenant, "role": role.value, "key": secret})
        return
    out.print(f"Created {role.value} key {key_id} for tenant {tenant}.", markup=False)
    out.print("Key (shown only now; send it as 'Authorization: Bearer KEY'):", markup=False)
    out.print(secret, markup=False)


@keys_app.command("list")
def keys_list(ctx: typer.Context, json_output: bool = JSON_OPTION) -> None:
    """List API keys (their ids and first characters, never the keys)."""

    async def work(ledger: Ledger) -> list[ApiKey]:
        return await ledger.keys.list_keys()

    keys = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json([_key_json(k) for k in keys])
        return
    if not keys:
        out.print("No API keys. Create one with: ledger keys create --tenant NAME")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "TENANT", "ROLE", "PREFIX", "CREATED", "REVOKED"):
        table.add_column(column)
    for row in (_key_json(k) for k in keys):
        table.add_row(
            row["id"],
            row["tenant"],
            row["role"],
            row["prefix"],
            row["created_at"],
            row["revoked_at"] or "-",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., metavar="ID", help="Key id (see `ledger keys list`)."),
) -> None:
    """Revoke an API key: requests made with it are refused from now on."""

    async def work(ledger: Ledger) -> None:
        await ledger.keys.revoke(key_id)

    run_with_ledger(ctx, work)
    out.print(f"Revoked key {key_id}.", markup=False)


# ---------------------------------------------------------------------------- db

db_app = typer.Typer(
    help="The database schema: upgrade, downgrade, current, history.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def _alembic_error(exc: Exception) -> CliError:
    return CliError(f"migration failed: {str(exc).strip().splitlines()[0] if str(exc) else exc}")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    revision: str = typer.Argument("head", metavar="REVISION", help="Revision to upgrade to."),
) -> None:
    """Migrate the database up to the newest schema (or REVISION)."""
    from alembic.util import CommandError

    from ledger.db import migrate

    settings = options(ctx).settings()
    before = _current(settings)
    try:
        migrate.upgrade(settings.url, revision)
    except CommandError as exc:
        raise _alembic_error(exc) from exc
    after = _current(settings)
    if before == after:
        out.print(f"{shown_url(settings.url)} is already at {after or 'base'}.", markup=False)
    else:
        out.print(
            f"Upgraded {shown_url(settings.url)} from {before or 'base'} to {after}.",
            markup=False,
        )


@db_app.command("downgrade")
def db_downgrade(
    ctx: typer.Context,
    revision: str = typer.Argument(
        ..., metavar="REV", help="Revision to go down to: an id, -1, or base (drops everything)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Migrate the database down to REV. Data in the removed tables and columns is lost."""
    from alembic.util import CommandError

    from ledger.db import migrate

    settings = options(ctx).settings()
    require_database(settings)
    if not yes and out.is_terminal:
        typer.confirm(
            f"Downgrade {shown_url(settings.url)} to {revision}? Data may be lost", abort=True
        )
    before = _current(settings)
    try:
        migrate.downgrade(settings.url, revision)
    except CommandError as exc:
        raise _alembic_error(exc) from exc
    after = _current(settings)
    out.print(
        f"Downgraded {shown_url(settings.url)} from {before or 'base'} to {after or 'base'}.",
        markup=False,
    )


def _current(settings: Settings) -> str | None:
    from sqlalchemy.exc import DBAPIError

    from ledger.db import migrate

    try:
        return asyncio.run(migrate.current_revision(settings.url))
    except (DBAPIError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CliError(f"cannot open the database {shown_url(settings.url)}: {reason}") from exc


@db_app.command("current")
def db_current(ctx: typer.Context, json_output: bool = JSON_OPTION) -> None:
    """Show the database's schema revision; exit code 1 when it is not up to date."""
    from ledger.db import migrate

    settings = options(ctx).settings()
    path = sqlite_file(settings)
    # A database file that does not exist is at no revision; opening it would create it.
    current = None if path is not None and not path.exists() else _current(settings)
    head = migrate.head_revision()
    if json_output:
        render.emit_json(
            {
                "database": shown_url(settings.url),
                "current": current,
                "head": head,
                "up_to_date": current == head,
            }
        )
        raise typer.Exit(EXIT_OK if current == head else EXIT_FAILED)
    where = shown_url(settings.url)
    if current == head:
        out.print(f"{where}: {current} (up to date)", markup=False)
    else:
        hint = (
            "any ledger command migrates it"
            if migrates_on_first_use(settings.url)
            else "run `ledger db upgrade`"
        )
        out.print(f"{where}: {current or 'empty'}, newest is {head} ({hint})", markup=False)
    raise typer.Exit(EXIT_OK if current == head else EXIT_FAILED)


@db_app.command("history")
def db_history(ctx: typer.Context, json_output: bool = JSON_OPTION) -> None:
    """List the schema revisions this version of ledger knows, newest first."""
    from ledger.db import migrate

    revisions = migrate.history()
    if json_output:
        render.emit_json(
            [{"revision": r, "down_revision": d, "message": m} for r, d, m in revisions]
        )
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("REVISION")
    table.add_column("PARENT")
    table.add_column("DESCRIPTION")
    for rev, down, message in revisions:
        table.add_row(rev, down or "-", message)
    out.print(table)
