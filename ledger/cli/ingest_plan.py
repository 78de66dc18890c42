"""``ledger ingest --dry-run``: what a run would submit, without changing anything.

The plan is the real submission (the same checks of new, changed and unchanged files,
including the skip of files already indexed unchanged) made in a transaction that is rolled
back, so the dry run and the run after it cannot disagree.
"""

from __future__ import annotations

import itertools

from rich.table import Table
from rich.text import Text

from ledger.app import Ledger
from ledger.cli import render
from ledger.cli.app import EXIT_OK, EXIT_USAGE, err, out
from ledger.cli.ingest_request import Request, profiles_of
from ledger.cli.walk import WalkStats
from ledger.cli.walk_report import nothing_found, report_skipped, skipped_json
from ledger.processors.builtin import unchanged_skip
from ledger.states import DocumentStatus


async def plan(ledger: Ledger, request: Request) -> int:
    """Print (or emit as JSON) what a run would do; exit code 2 when there is no file."""
    stats = WalkStats()

    sources = request.sources(ledger.settings, stats)
    first = next(sources, None)
    if first is None:
        if request.json_output:
            render.emit_json({"batch_id": request.batch_id, "files": 0, **skipped_json(stats)})
        else:
            report_skipped(stats)
        err.print(f"error: {nothing_found(request, stats)}", markup=False)
        return EXIT_USAGE

    spec = request.spec()
    result = await ledger.queue.submit_preview(
        spec,
        itertools.chain([first], sources),
        skip_unchanged=unchanged_skip(spec, profiles_of(ledger)),
    )
    to_process = result.added - result.skipped
    unchanged = result.skipped + result.known - result.requeued
    pending = result.batch.counts[DocumentStatus.PENDING]
    if request.json_output:
        render.emit_json(
            {
                "batch_id": request.batch_id,
                "batch_exists": not result.created,
                "processor": request.processor,
                "options": request.options,
                "files": result.added + result.known,
                "new": to_process,
                "changed": result.requeued,
                "unchanged": unchanged,
                "added": result.added,
                "known": result.known,
                "skipped_unchanged": result.skipped,
                "requeued": result.requeued,
                "to_process": pending,
                **skipped_json(stats),
            }
        )
        return EXIT_OK
    report_skipped(stats)
    state = "new batch" if result.created else "existing batch"
    out.print(Text.assemble("Plan for ", (state, "bold"), " ", (request.batch_id, "bold")))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("new", f"{to_process:,}", "to add and process")
    table.add_row("changed", f"{result.requeued:,}", "in the batch, changed: to process again")
    table.add_row(
        "unchanged",
        f"{unchanged:,}",
        f"to leave as they are ({result.skipped:,} already indexed, skipped at submit; "
        f"{result.known - result.requeued:,} already in the batch)",
    )
    out.print(table)
    out.print(f"{pending:,} documents would then wait to be processed.", markup=False)
    out.print("Dry run: nothing was submitted.", style="dim")
    return EXIT_OK


def size(n: int) -> str:
    """A byte count in decimal units, as people read sizes."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"
