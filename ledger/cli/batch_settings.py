"""``ledger batches set``: change a submitted batch's name, priority or attempt budget.

The same core call as ``PATCH /api/v1/batches/{id}``: the next claim uses the new values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import render
from ledger.cli.app import EXIT_USAGE, CliError, out, run_with_ledger
from ledger.cli.batches import BATCH_ARGUMENT, JSON_OPTION, batches_app
from ledger.errors import InvalidInput

# The database and the core load when the command runs, not for --help.
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import Batch


def _unchanged(flag: str, metavar: str, help: str) -> Any:
    """An option that leaves its setting as it is when not given."""
    return typer.Option(None, flag, metavar=metavar, help=help, show_default=False)


@batches_app.command("set")
def set_command(
    ctx: typer.Context,
    batch_id: str = BATCH_ARGUMENT,
    priority: int | None = _unchanged(
        "--priority", "N", "Claim order across batches: higher first."
    ),
    max_attempts: int | None = _unchanged(
        "--max-attempts", "N", "Attempts per document before it is failed for good."
    ),
    name: str | None = _unchanged("--name", "NAME", "A name for people."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Change a batch's priority, attempt budget or name; the next claim uses them."""
    from ledger.queue.batch_edits import BatchChanges

    changes = BatchChanges(name=name, priority=priority, max_attempts=max_attempts)
    try:
        values = changes.values()
    except InvalidInput as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if not values:
        raise CliError("nothing to change: give --priority, --max-attempts or --name", EXIT_USAGE)

    async def work(ledger: Ledger) -> Batch:
        return await ledger.control.update_batch(batch_id, changes)

    batch = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(render.batch_json(batch))
        return
    out.print(
        f"Batch {batch.id}: priority {batch.priority}, max attempts {batch.max_attempts}, "
        f"name {batch.name!r}.",
        markup=False,
    )
