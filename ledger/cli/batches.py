"""Looking at batches and steering them: batches, status, failures, retry, pause, resume,
cancel, and search over what was ingested."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import render
from ledger.cli.app import (
    EXIT_USAGE,
    CliError,
    app,
    err,
    options,
    out,
    require_database,
    run_with_ledger,
)
from ledger.retry_advice import failures_advice, retry_may_help
from ledger.states import BatchState, BatchStatus, DocumentStatus
from ledger.wording import plural, waiting_note

# rich is imported where a table or styled text is printed: --help and --json need none.
if TYPE_CHECKING:
    from rich.text import Text

    from ledger.app import Ledger
    from ledger.model import Batch, DocumentInfo, FailureGroup, Progress, SearchHit

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts (stable keys).")
BATCH_ARGUMENT = typer.Argument(..., metavar="BATCH", help="Batch id (see `ledger batches`).")
CODE_OPTION = typer.Option(None, "--code", metavar="CODE", help="Only this error code.")


def _counts_text(batch: Batch) -> Text:
    from rich.text import Text

    text = Text()
    for status in (DocumentStatus.DONE, DocumentStatus.FAILED, DocumentStatus.SKIPPED):
        n = batch.counts[status]
        if text:
            text.append(" ")
        text.append(f"{n:,} {status.value}", style=render.STATUS_STYLE[status] if n else "dim")
    return text


class StateFilter(StrEnum):
    """What ``batches --state`` takes: every status word, and the state they share."""

    PENDING = BatchStatus.PENDING.value
    RUNNING = BatchStatus.RUNNING.value
    ACTIVE = BatchState.ACTIVE.value
    PAUSED = BatchStatus.PAUSED.value
    COMPLETE = BatchStatus.COMPLETE.value
    CANCELLED = BatchStatus.CANCELLED.value


batches_app = typer.Typer(
    help="List batches, newest first, with their progress; `ledger batches set` changes one.",
    invoke_without_command=True,
)
app.add_typer(batches_app, name="batches")


@batches_app.callback(invoke_without_command=True)
def batches_command(
    ctx: typer.Context,
    state: Annotated[
        StateFilter | None,
        typer.Option(
            "--state",
            help="Only batches with this status, as the STATUS column shows it "
            "(active: pending or running).",
            show_default=False,
        ),
    ] = None,
    limit: int = typer.Option(
        50, "--limit", "-n", min=1, metavar="N", help="Show at most this many."
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """List batches, newest first, with their progress; `ledger batches set` changes one."""
    if ctx.invoked_subcommand is not None:
        return

    async def work(ledger: Ledger) -> tuple[list[Batch], bool]:
        if state is StateFilter.ACTIVE:
            page = await ledger.reads.batches(state=BatchState.ACTIVE, limit=limit)
        else:
            status = BatchStatus(state.value) if state else None
            page = await ledger.reads.batches(status=status, limit=limit)
        return page.items, page.next_cursor is not None

    items, more = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json([render.batch_json(b) for b in items])
        return
    if not items:
        out.print("No batches yet. Start one with: ledger ingest PATH")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("BATCH", no_wrap=True)
    table.add_column("STATUS")
    table.add_column("PROGRESS", justify="right")
    table.add_column("COUNTS")
    table.add_column("PROCESSOR")
    table.add_column("CREATED", no_wrap=True)
    for b in items:
        word = render.status_word(b)
        style = {"complete": "green", "running": "cyan", "paused": "yellow"}.get(word, "")
        pct = 100.0 if not b.total else 100.0 * b.finished / b.total
        table.add_row(
            b.id,
            Text(word, style=style),
            f"{b.finished:,}/{b.total:,} {pct:3.0f}%",
            _counts_text(b),
            b.processor,
            render.when(b.created_at),
        )
    out.print(table)
    if more:
        err.print(f"(showing the newest {limit}; more with --limit)", style="dim")


@app.command("status")
def status_command(
    ctx: typer.Context, batch_id: str = BATCH_ARGUMENT, json_output: bool = JSON_OPTION
) -> None:
    """Show one batch: counts per status, rate, ETA and timestamps."""

    async def work(ledger: Ledger) -> tuple[Progress, list[FailureGroup]]:
        found = await ledger.reads.progress(batch_id)
        failed = found.batch.counts[DocumentStatus.FAILED]
        return found, (await ledger.reads.failures(batch_id) if failed else [])

    from ledger.queue.batch_status import read_status

    settings = options(ctx).read_settings()
    require_database(settings)  # before the read: opening a missing SQLite file creates it
    found = read_status(settings, batch_id)
    progress, groups = found if found is not None else run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(render.progress_json(progress))
        return
    from rich.table import Table
    from rich.text import Text

    b = progress.batch
    word = render.status_word(b)
    title = Text.assemble(("Batch ", "bold"), (b.id, "bold"), "  ", (word, _word_style(word)))
    out.print(title)
    if b.name and b.name != b.id:
        out.print(f"  {b.name}", markup=False)
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column()
    for status in DocumentStatus:
        n = b.counts[status]
        share = f"{100.0 * n / b.total:5.1f}%" if b.total else ""
        table.add_row(status.value, Text(f"{n:,}", style=render.STATUS_STYLE[status]), share)
    table.add_row("total", f"{b.total:,}", f"{progress.percent:5.1f}% finished")
    out.print(table)
    facts = Table(box=None, show_header=False, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("state", b.state.value + (f" ({b.pause_reason})" if b.pause_reason else ""))
    facts.add_row("rate", render.rate(progress.rate))
    facts.add_row("eta", render.duration(progress.eta_seconds))
    facts.add_row("processor", b.processor + (f" {b.options}" if b.options else ""))
    facts.add_row("priority", str(b.priority))
    facts.add_row("max attempts", str(b.max_attempts))
    facts.add_row("created", render.when(b.created_at))
    facts.add_row("started", render.when(b.started_at))
    facts.add_row("last finish", render.when(progress.last_finished_at))
    facts.add_row("completed", render.when(b.completed_at))
    for name, sink in progress.sinks.items():
        # Apart from "complete" (about documents): a store may be down for hours.
        shown = f"{sink.done:,} done, {sink.pending:,} pending, {sink.failed:,} failed"
        facts.add_row(f"sink {name}", shown + (f" ({sink.last_error})" if sink.last_error else ""))
    out.print(facts)
    if progress.waiting_for_processor is not None:
        out.print(waiting_note(progress.waiting_for_processor), style="yellow", markup=False)
        out.print(
            "  Start a worker that can import it (LEDGER_PROCESSORS, or `ledger worker` "
            "where it is installed); see `ledger workers`.",
            style="dim",
            markup=False,
        )
    if groups:
        out.print(failures_advice(b.id, groups), style="dim", markup=False)


def _word_style(word: str) -> str:
    return {"complete": "green", "running": "cyan", "paused": "yellow", "cancelled": "magenta"}.get(
        word, ""
    )


async def _failed_documents(
    ledger: Ledger, batch_id: str, code: str, limit: int | None
) -> list[DocumentInfo]:
    """The failed documents with ``code``, all of them when ``limit`` is None."""
    docs: list[DocumentInfo] = []
    cursor: str | None = None
    while True:
        want = 500 if limit is None else min(500, limit - len(docs))
        page = await ledger.reads.documents(
            batch_id, status=DocumentStatus.FAILED, code=code, cursor=cursor, limit=want
        )
        docs.extend(page.items)
        cursor = page.next_cursor
        if cursor is None or (limit is not None and len(docs) >= limit):
            return docs


@app.command("failures")
def failures_command(
    ctx: typer.Context,
    batch_id: str = BATCH_ARGUMENT,
    code: str | None = CODE_OPTION,
    limit: int = typer.Option(
        20, "--limit", "-n", min=0, metavar="N", help="Documents shown per error code (0: all)."
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """List a batch's failed documents with their error, grouped by error code."""

    async def work(ledger: Ledger) -> list[tuple[Any, list[DocumentInfo]]]:
        groups = await ledger.reads.failures(batch_id)
        if code is not None:
            groups = [g for g in groups if g.code == code]
        return [
            (g, await _failed_documents(ledger, batch_id, g.code, limit or None)) for g in groups
        ]

    groups = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(
            {
                "batch_id": batch_id,
                "failed": sum(g.count for g, _ in groups),
                "groups": [render.failure_group_json(g, docs) for g, docs in groups],
            }
        )
        return
    if not groups:
        out.print(
            f"No failed documents{f' with code {code}' if code else ''} in batch {batch_id}.",
            markup=False,
        )
        return
    from rich.table import Table
    from rich.text import Text

    total = sum(g.count for g, _ in groups)
    out.print(f"[bold]{total:,} failed[/] in batch [bold]{batch_id}[/]", highlight=False)
    for group, docs in groups:
        out.print()
        out.print(Text.assemble((group.code, "bold red"), f"  {group.count:,} document(s)"))
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1, 0, 2))
        table.add_column("source", overflow="fold", ratio=3)
        table.add_column("error", overflow="fold", ratio=2, style="dim")
        for doc in docs:
            table.add_row(render.document_name(doc), render.first_line(doc.error_message))
        out.print(table)
        if len(docs) < group.count:
            out.print(
                f"  … and {group.count - len(docs):,} more "
                f"(ledger failures {batch_id} --code {group.code} --limit 0)",
                style="dim",
                markup=False,
            )
    out.print()
    if not retry_may_help([g for g, _ in groups]):
        out.print(failures_advice(batch_id, [g for g, _ in groups]), style="dim", markup=False)
        return
    hint = f"ledger retry {batch_id}" + (f" --code {code}" if code else "")
    out.print(f"Retry them with: {hint}", style="dim", markup=False)


@app.command("retry")
def retry_command(
    ctx: typer.Context,
    batch_id: str = BATCH_ARGUMENT,
    code: str | None = CODE_OPTION,
    json_output: bool = JSON_OPTION,
) -> None:
    """Put a batch's failed documents back in the queue (with a fresh attempt budget)."""

    async def work(ledger: Ledger) -> tuple[int, Batch]:
        count = await ledger.control.retry_failed(batch_id, code=code)
        return count, await ledger.reads.batch(batch_id)

    count, batch = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json({"retried": count, "batch": render.batch_json(batch)})
        return
    what = f"failed document{'s' if count != 1 else ''}" + (f" with code {code}" if code else "")
    out.print(f"Queued {count:,} {what} of batch {batch_id} again.", markup=False)
    if count:
        if batch.state == BatchState.PAUSED:
            out.print(f"The batch is paused: ledger resume {batch_id}", style="yellow")
        out.print(
            "Process them with `ledger worker`, or by running the same `ledger ingest` again.",
            style="dim",
            markup=False,
        )


def _control(ctx: typer.Context, action: str, batch_id: str, json_output: bool) -> Batch:
    async def work(ledger: Ledger) -> Batch:
        if action == "pause":
            return await ledger.control.pause(batch_id)
        if action == "resume":
            return await ledger.control.resume(batch_id)
        return await ledger.control.cancel(batch_id)

    batch = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(render.batch_json(batch))
    return batch


@app.command("pause")
def pause_command(
    ctx: typer.Context, batch_id: str = BATCH_ARGUMENT, json_output: bool = JSON_OPTION
) -> None:
    """Stop handing out a batch's documents; those running now finish."""
    batch = _control(ctx, "pause", batch_id, json_output)
    if not json_output:
        out.print(
            f"Batch {batch.id} is paused. Resume with: ledger resume {batch.id}", markup=False
        )


@app.command("resume")
def resume_command(
    ctx: typer.Context, batch_id: str = BATCH_ARGUMENT, json_output: bool = JSON_OPTION
) -> None:
    """Hand out a paused batch's documents again."""
    batch = _control(ctx, "resume", batch_id, json_output)
    if not json_output:
        left = batch.counts[DocumentStatus.PENDING]
        out.print(f"Batch {batch.id} is active ({left:,} pending).", markup=False)


@app.command("cancel")
def cancel_command(
    ctx: typer.Context,
    batch_id: str = BATCH_ARGUMENT,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Cancel a batch for good: pending documents are cancelled, running ones finish."""
    if not yes and out.is_terminal and not json_output:
        typer.confirm(f"Cancel batch {batch_id}? This cannot be undone", abort=True)
    batch = _control(ctx, "cancel", batch_id, json_output)
    if not json_output:
        n = batch.counts[DocumentStatus.CANCELLED]
        cancelled = plural(n, "document")
        out.print(f"Batch {batch.id} is cancelled ({cancelled} cancelled).", markup=False)


@app.command("search")
def search_command(
    ctx: typer.Context,
    query: str = typer.Argument(
        ..., metavar="QUERY", help="What to look for (words; ranked with BM25).", show_default=False
    ),
    k: int = typer.Option(
        5, "-k", "--top", min=1, max=1000, metavar="N", help="How many chunks to show."
    ),
    mode: str = typer.Option(
        "text",
        "--mode",
        metavar="text|vector|hybrid",
        help="text (BM25), vector (cosine over stored vectors) or hybrid (both, fused).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        metavar="MODEL",
        help="Embedding model for vector/hybrid (default: the most recent).",
        show_default=False,
    ),
    batch_id: str | None = typer.Option(
        None,
        "--batch",
        "-b",
        metavar="BATCH",
        help="Only this batch's documents (default: every batch).",
        show_default=False,
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """Search the ingested documents: the best matching chunks with source and page."""
    # Here, not at the top: embedders load numpy, which every other command (a worker among
    # them) would pay for at start.
    from ledger.embedders.search import MODES
    from ledger.embedders.search import search as search_modes

    if not query.strip():
        raise CliError("the search query is empty", EXIT_USAGE)
    if mode not in MODES:
        raise CliError(f"--mode must be one of {', '.join(MODES)}", EXIT_USAGE)

    async def work(ledger: Ledger) -> list[SearchHit]:
        from ledger.embedders.profiles import profiles_for

        profiles = profiles_for(ledger.settings)
        return await search_modes(
            ledger,
            query,
            mode=mode,
            k=k,
            batch_id=batch_id,
            model=model,
            profiles=profiles,
            deadline=ledger.settings.search_embed_deadline_seconds,
        )

    hits = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(
            [
                {
                    "rank": i,
                    "score": h.score,
                    "source": h.source,
                    "source_name": h.source_name,
                    "page": h.page,
                    "document_id": h.document_id,
                    "chunk_id": h.chunk_id,
                    "ordinal": h.ordinal,
                    "char_start": h.char_start,
                    "char_end": h.char_end,
                    "batch_id": h.batch_id,
                    "text": h.text,
                    "snippet": h.snippet,
                }
                for i, h in enumerate(hits, 1)
            ]
        )
        return
    if not hits:
        out.print("No matches.")
        return
    from rich.text import Text

    for i, h in enumerate(hits, 1):
        where = h.source_name + (f"  page {h.page}" if h.page is not None else "")
        out.print(
            Text.assemble(
                (f"{i}. ", "bold"), (where, "bold cyan"), (f"  score {h.score:.3f}", "dim")
            )
        )
        out.print(_highlighted(h.snippet))
        out.print()


def _highlighted(snippet: str) -> Text:
    """The snippet with its matches (between « and ») in bold."""
    from rich.text import Text

    text = Text()
    for i, part in enumerate(" ".join(snippet.split()).replace("»", "«").split("«")):
        text.append(part, style="bold yellow" if i % 2 else "")
    return text
