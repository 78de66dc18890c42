"""``ledger export``: every chunk of some batches (or all) as JSON Lines or Parquet.

The rows are those of the API's NDJSON chunk stream (ledger/export.py), read in keyset
pages and written as they come; the file appears only once the export is complete.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer

from ledger.cli.app import EXIT_USAGE, CliError, app, err, run_with_ledger
from ledger.wording import plural

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.export import Exported

FORMATS = ("jsonl", "parquet")  # as ledger.export.FORMATS, without importing it for --help


@app.command("export")
def export_command(
    ctx: typer.Context,
    batch_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[BATCH]...", help="Batch ids (see `ledger batches`).", show_default=False
        ),
    ] = None,
    every: bool = typer.Option(False, "--all", help="Export every batch of the ledger."),
    fmt: str = typer.Option(
        "jsonl", "--format", "-f", metavar="jsonl|parquet", help="File format."
    ),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        metavar="FILE",
        help="The file to write ('-' for stdout).",
        show_default=False,
    ),
    vectors: bool = typer.Option(
        False, "--vectors", help="Include each chunk's stored vectors, by model."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        metavar="MODEL",
        help="With --vectors: only this model's vectors.",
        show_default=False,
    ),
    page_size: int = typer.Option(1000, "--page-size", min=1, max=1000, hidden=True),
) -> None:
    """Export chunks with their citations (source name, page, offsets) and hashes: one row
    per chunk, streamed with bounded memory, the file written only when complete."""
    if bool(batch_ids) == every:
        raise CliError("name the batches to export, or --all (not both)", EXIT_USAGE)
    if fmt not in FORMATS:
        raise CliError(f"--format must be one of {', '.join(FORMATS)}", EXIT_USAGE)
    if model is not None and not vectors:
        raise CliError("--model selects vectors: add --vectors", EXIT_USAGE)
    from ledger import export as exporting
    from ledger.errors import InvalidInput

    if fmt == "parquet":
        try:
            exporting.require_pyarrow()
        except InvalidInput as exc:
            raise CliError(exc.message, EXIT_USAGE) from exc
    target = None if output == "-" else Path(output)
    if target is not None and not target.parent.is_dir():
        raise CliError(f"no folder {target.parent} to write {target.name} in", EXIT_USAGE)

    async def work(ledger: Ledger) -> Exported:
        ids = await exporting.all_batch_ids(ledger) if every else list(batch_ids or [])

        async def write(stream: IO[bytes]) -> Exported:
            return await exporting.export(
                ledger, ids, stream, fmt=fmt, vectors=vectors, model=model, page=page_size
            )

        if target is None:
            return await write(sys.stdout.buffer)
        with exporting.atomic_file(target) as stream:
            return await write(stream)

    done = run_with_ledger(ctx, work)
    where = "stdout" if target is None else str(target)
    extra = f", {done.with_vectors} with vectors" if vectors else ""
    batches = plural(done.batches, "batch", "batches")
    err.print(
        f"Exported {plural(done.chunks, 'chunk')}{extra} of {batches} to {where}.",
        markup=False,
    )
