"""``ledger maintain``: run maintenance now (for cron), or show what the last runs did."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import render
from ledger.cli.app import EXIT_FAILED, app, err, options, out, run_with_ledger
from ledger.cli.signals import StopSignals

# The database and the core load when the command runs, not for --help.
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import MaintenanceRun

log = logging.getLogger("ledger.cli")


def _show(run: MaintenanceRun) -> None:
    finished = render.iso(run.finished_at) if run.finished_at else "not finished"
    out.print(
        f"Maintenance run {run.id} by {run.runner}: {render.iso(run.started_at)} – {finished}",
        markup=False,
    )
    for name, count in run.counts.items():
        out.print(f"  {name.replace('_', ' ')}: {count}", markup=False)
    if run.error:
        out.print(f"  error: {run.error}", markup=False)


def _emit(run: MaintenanceRun | None, *, ran: bool) -> None:
    body: dict[str, Any] = {"ran": ran, "run": run.as_json() if run else None}
    render.emit_json(body)


@app.command("maintain")
def maintain_command(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One pass, then exit (for cron)."),
    last: bool = typer.Option(
        False, "--last", help="Only show what the last run did; run nothing."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Rescue expired leases, clean uploads, prune old history (LEDGER_RETENTION_DAYS).

    `ledger serve` and `ledger worker` already do this every
    LEDGER_MAINTENANCE_INTERVAL_SECONDS; one process at a time runs it, the others skip
    their turn. Without --once this runs until stopped.
    """
    from ledger.maintenance.run import last_run, run_forever, run_once, runner_name

    if last:
        shown = run_with_ledger(ctx, last_run)
        if json_output:
            _emit(shown, ran=False)
        elif shown is None:
            out.print("No maintenance has run yet.", markup=False)
        else:
            _show(shown)
        return
    runner = runner_name("maintain")
    if once:

        async def one(ledger: Ledger) -> MaintenanceRun | None:
            return await run_once(ledger, runner=runner)

        run = run_with_ledger(ctx, one)
        if json_output:
            _emit(run, ran=run is not None)
        elif run is None:
            out.print("Another process is running maintenance right now; nothing done.")
        else:
            _show(run)
        if run is not None and run.error:
            raise typer.Exit(EXIT_FAILED)
        return

    interval = options(ctx).settings().maintenance_interval_seconds
    if options(ctx).verbose == 0:
        logging.getLogger("ledger").setLevel(logging.INFO)

    async def forever(ledger: Ledger) -> None:
        task = asyncio.create_task(run_forever(ledger, runner=runner, interval=interval))

        def stop(signum: int) -> None:
            task.cancel()

        with StopSignals(asyncio.get_running_loop(), first=stop, second=stop):
            err.print(f"Maintenance every {interval:g} s; Ctrl-C to stop.", markup=False)
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise

    run_with_ledger(ctx, forever)
