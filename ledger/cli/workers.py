"""Who is working: ``ledger workers`` lists worker processes with their derived state."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import render
from ledger.cli.app import app, err, out, run_with_ledger
from ledger.states import WorkerState

# The database, the core and rich load when the command runs, not for --help.
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import Page, WorkerInfo

_STATE_STYLE = {WorkerState.ALIVE: "green", WorkerState.LOST: "red", WorkerState.STOPPED: "dim"}


class WorkerStateFilter(StrEnum):
    ALIVE = WorkerState.ALIVE.value
    LOST = WorkerState.LOST.value
    STOPPED = WorkerState.STOPPED.value


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "state": w.state.value,
        "processors": w.processors,
        "concurrency": w.concurrency,
        "in_flight": w.in_flight,
        "finished": w.finished,
        "started_at": render.iso(w.started_at),
        "last_heartbeat_at": render.iso(w.last_heartbeat_at),
        "stopped_at": render.iso(w.stopped_at),
    }


@app.command("workers")
def workers_command(
    ctx: typer.Context,
    state: Annotated[
        WorkerStateFilter | None,
        typer.Option(
            "--state",
            help="Only workers in this state (lost: no heartbeat within the lease time).",
            show_default=False,
        ),
    ] = None,
    limit: int = typer.Option(
        50, "--limit", "-n", min=1, max=1000, metavar="N", help="Show at most this many."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List worker processes, newest first: alive, lost (stopped heartbeating) or stopped,
    with the processors each can run and what it is doing."""

    async def work(ledger: Ledger) -> Page[WorkerInfo]:
        wanted = WorkerState(state.value) if state is not None else None
        return await ledger.workers.page(state=wanted, limit=limit)

    page = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json([worker_json(w) for w in page.items])
        return
    if not page.items:
        out.print("No workers yet. `ledger worker` or `ledger serve` starts one.")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("WORKER")
    table.add_column("STATE", no_wrap=True)
    for name in ("IN FLIGHT", "FINISHED", "CONC"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("STARTED", no_wrap=True)
    table.add_column("HEARTBEAT", no_wrap=True)
    table.add_column("PROCESSORS")
    for w in page.items:
        table.add_row(
            w.id,
            Text(w.state.value, style=_STATE_STYLE[w.state]),
            f"{w.in_flight:,}",
            f"{w.finished:,}",
            str(w.concurrency),
            render.when(w.started_at),
            render.when(w.last_heartbeat_at),
            ", ".join(w.processors),
        )
    out.print(table)
    if page.next_cursor is not None:
        err.print(f"(showing the newest {limit}; more with --limit)", style="dim")
