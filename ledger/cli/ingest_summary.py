"""The summary ``ledger ingest`` prints when a run ends, and the command line to run again."""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING

from ledger.cli import render
from ledger.cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, out
from ledger.cli.ingest_views import UNCHANGED
from ledger.retry_advice import failures_advice
from ledger.states import BatchState, DocumentStatus
from ledger.wording import plural

if TYPE_CHECKING:
    from ledger.cli.ingest_request import Request
    from ledger.model import DocumentInfo, FailureGroup
    from ledger.model import Progress as BatchProgress


def print_summary(
    final: BatchProgress,
    failures: list[DocumentInfo],
    groups: list[FailureGroup],
    *,
    request: Request,
    processed: int,
    elapsed: float,
    code: int,
    stop_reason: str | None,
    removed: int,
) -> None:
    """What the run did, for a person: the batch's counts, this run's work, the first
    failures and, when it stopped early, how to continue."""
    from rich.table import Table
    from rich.text import Text

    b = final.batch
    word = render.status_word(b)
    headline = {EXIT_OK: ("Done", "bold green"), EXIT_INTERRUPTED: ("Stopped", "bold yellow")}
    title, style = headline.get(code, ("Finished with problems", "bold red"))
    if code == EXIT_FAILED and stop_reason:
        title = "Stopped"
    out.print(Text.assemble((title, style), f": batch {b.id} is {word}"))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for status in DocumentStatus:
        n = b.counts[status]
        if n or status in (DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.SKIPPED):
            table.add_row(status.value, Text(f"{n:,}", style=render.STATUS_STYLE[status]))
    table.add_row("total", f"{b.total:,}")
    out.print(table)
    if processed:
        speed = render.rate(processed / elapsed) if elapsed > 0 else "-"
        took = render.duration(elapsed)
        line = f"This run processed {plural(processed, 'document')} in {took} ({speed})."
    else:
        # Nothing finished here and nothing is left: there was nothing to do at the start.
        why = f": {UNCHANGED}" if b.complete and b.total else ""
        line = f"This run processed nothing{why}."
    out.print(line, markup=False)
    if removed:
        out.print(
            f"This run retired {plural(removed, 'document')} whose file is gone.",
            markup=False,
        )
    n_failed = b.counts[DocumentStatus.FAILED]
    if failures:
        out.print(f"First failures ({n_failed:,} in all):", style="bold red")
        ft = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 2))
        ft.add_column(style="red", no_wrap=True)
        ft.add_column(overflow="fold")
        ft.add_column(overflow="fold", style="dim")
        for doc in failures:
            ft.add_row(
                doc.error_code or "",
                request.display(doc.source, doc.meta),
                render.first_line(doc.error_message, 120),
            )
        out.print(ft)
        out.print(failures_advice(b.id, groups), style="dim", markup=False)
    if code == EXIT_INTERRUPTED or (stop_reason and not b.complete):
        if b.state == BatchState.PAUSED:
            out.print(f"Resume with: ledger resume {b.id}, then run again:", markup=False)
        elif b.state == BatchState.ACTIVE:
            out.print("Continue where it stopped by running the same command:", markup=False)
        if b.state != BatchState.CANCELLED:
            out.print("  " + same_command(), style="bold", markup=False)


def same_command() -> str:
    """The command line that was run, ready to paste (minus Python's own arguments)."""
    args = sys.argv[1:]
    program = os.path.basename(sys.argv[0]) if sys.argv else "ledger"
    if program in ("__main__.py", "-m", "-c") or program.startswith("python"):
        program = "ledger"
    return shlex.join([program, *args])
