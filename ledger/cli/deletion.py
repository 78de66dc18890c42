"""``ledger delete``: remove a batch, every row of it and its stored upload files.

Deletion goes in short transactions (``LEDGER_DELETE_STEP_ROWS`` rows of one table each), so
it never holds the write lock for long. Interrupted (Ctrl-C, a kill), it leaves the batch
marked as being deleted: hidden, never claimed; running the command again finishes it, and
``ledger delete --unfinished`` finishes every such batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from ledger.cli import render
from ledger.cli.app import EXIT_USAGE, CliError, app, out, run_with_ledger
from ledger.wording import plural

if TYPE_CHECKING:
    from ledger.app import Ledger


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    batch_id: str | None = typer.Argument(
        None, metavar="[BATCH]", help="Batch id (see `ledger batches`).", show_default=False
    ),
    force: bool = typer.Option(
        False, "--force", help="Cancel documents running now instead of refusing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    unfinished: bool = typer.Option(
        False, "--unfinished", help="Finish every deletion that was interrupted."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Delete a batch: its documents, attempts, events, chunks, vectors, uploads and stored
    files. Server files it was submitted from are never touched. Cannot be undone."""
    if (batch_id is None) == (not unfinished):
        raise CliError("give a BATCH or --unfinished (not both)", EXIT_USAGE)
    if batch_id is not None and not yes and out.is_terminal and not json_output:
        typer.confirm(
            f"Delete batch {batch_id} and everything of it? This cannot be undone", abort=True
        )

    async def work(ledger: Ledger) -> list[dict[str, Any]]:
        ids = [batch_id] if batch_id is not None else await ledger.control.unfinished_deletions()
        reports = []
        for one in ids:
            report = await ledger.control.delete_batch(one, force=force)
            reports.append(
                {
                    "batch": report.batch_id,
                    "rows": report.rows,
                    "files": report.files,
                    "cancelled": report.cancelled,
                }
            )
        return reports

    reports = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(reports[0] if batch_id is not None else reports)
        return
    if not reports:
        out.print("No interrupted deletions.")
    for report in reports:
        documents = plural(report["rows"].get("documents", 0), "document")
        files = plural(report["files"], "stored file")
        out.print(f"Deleted batch {report['batch']} ({documents}, {files}).", markup=False)
