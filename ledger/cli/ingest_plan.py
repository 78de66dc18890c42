"""``ledger ingest --dry-run``: what a run would submit, without changing anything."""

from __future__ import annotations

import itertools

from rich.table import Table
from rich.text import Text

from ledger.cli import render
from ledger.cli.app import EXIT_OK, EXIT_USAGE, err, out
from ledger.cli.ingest_request import Request
from ledger.cli.walk import WalkStats, walk
from ledger.cli.walk_report import nothing_found, report_skipped, skipped_json
from ledger.core.ledger import Ledger
from ledger.errors import NotFound

PLAN_CHUNK = 1_000
EXAMPLES = 10


async def plan(ledger: Ledger, request: Request) -> int:
    """Print (or emit as JSON) the files a run would add; exit code 2 when there are none."""
    try:
        await ledger.batch(request.batch_id)
        exists = True
    except NotFound:
        exists = False
    stats = WalkStats()
    new = known = new_bytes = 0
    examples: list[str] = []
    sources = walk(
        request.roots,
        pattern=request.pattern,
        hidden=request.hidden,
        follow_symlinks=request.follow_symlinks,
        stats=stats,
    )
    while chunk := list(itertools.islice(sources, PLAN_CHUNK)):
        names = [s.source for s in chunk]
        have = await ledger.known_sources(request.batch_id, names) if exists else set()
        known += len(have)
        for spec in chunk:
            if spec.source not in have:
                new += 1
                new_bytes += spec.size or 0
                if len(examples) < EXAMPLES:
                    examples.append(spec.source)
    code = EXIT_OK if new + known else EXIT_USAGE
    note = "telling changed from unchanged documents needs the ingest pipeline's plan"
    if request.json_output:
        render.emit_json(
            {
                "batch_id": request.batch_id,
                "batch_exists": exists,
                "processor": request.processor,
                "options": request.options,
                "files": new + known,
                "new": new,
                "new_bytes": new_bytes,
                "known": known,
                "changed": None,
                "unchanged": None,
                **skipped_json(stats),
                "note": note,
            }
        )
        return code
    report_skipped(stats)
    if code != EXIT_OK:
        err.print(f"error: {nothing_found(request, stats)}", markup=False)
        return code
    state = "existing batch" if exists else "new batch"
    out.print(Text.assemble("Plan for ", (state, "bold"), " ", (request.batch_id, "bold")))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("new", f"{new:,}", f"to add ({size(new_bytes)})")
    table.add_row("known", f"{known:,}", "already in the batch; " + note)
    out.print(table)
    for source in examples:
        out.print(f"  + {request.display(source)}", style="green", markup=False)
    if new > len(examples):
        out.print(f"  … and {new - len(examples):,} more", style="dim")
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
