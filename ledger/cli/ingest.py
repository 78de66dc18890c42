"""``ledger ingest``: submit a folder as a batch and process it here, with a live view.

Running the same command twice names the same batch (its id is a hash of what was asked
for), so a second run resumes the first: documents already finished stay finished, and only
the rest are processed. The ledger's rows are the checkpoint; this process keeps nothing
that matters. This module reads the command line; the run itself is
:class:`ledger.cli.ingest_session.Session`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli.app import EXIT_USAGE, CliError, app, err, open_ledger, options
from ledger.cli.ingest_request import Request, parse_options
from ledger.cli.ingest_session import Session
from ledger.cli.walk import batch_id_for, resolve_roots
from ledger.errors import InvalidInput
from ledger.path_patterns import compile_patterns

# The database, the worker and the processors load when the command runs: --help and the
# other commands need none of them (docs/benchmarks.md, "Start-up and install").
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.settings import Settings


def _pattern_option(flag: str, short: str, help_text: str) -> Any:
    return typer.Option(flag, short, metavar="PATTERN", help=help_text, show_default=False)


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Files and folders to ingest (folders are walked recursively), or object "
            "prefixes s3://bucket/prefix/ (listed; the s3 extra).",
            show_default=False,
        ),
    ],
    batch: str | None = typer.Option(
        None,
        "--batch",
        "-b",
        metavar="ID",
        help="Batch id. Default: derived from the paths and options, so running the same "
        "command again resumes the same batch.",
        show_default=False,
    ),
    glob: str | None = typer.Option(
        None,
        "--glob",
        "-g",
        metavar="PATTERN",
        help="Only files whose path below PATH matches, e.g. '*.pdf' (* crosses folders; "
        "**/ is any folders or none).",
        show_default=False,
    ),
    include: Annotated[
        list[str] | None,
        _pattern_option(
            "--include",
            "-i",
            "Only files matching this gitignore-style pattern, repeatable "
            "('**/*.pdf': PDFs at any depth, 'docs/': everything under docs).",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        _pattern_option(
            "--exclude",
            "-x",
            "Leave out files matching this gitignore-style pattern, repeatable; "
            "excludes win over includes.",
        ),
    ] = None,
    all_types: bool = typer.Option(
        False,
        "--all-types",
        help="Also read files that are not documents by name (.js, .css, lock files...); "
        "default: skipped as excluded_type.",
    ),
    hidden: bool = typer.Option(False, "--hidden", help="Include files and folders named .*"),
    follow_symlinks: bool = typer.Option(
        False,
        "--follow-symlinks",
        help="Also take symbolic links to files outside the folder (default: skipped).",
    ),
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
    processor: str = typer.Option(
        "ingest",
        "--processor",
        "-p",
        metavar="NAME|module:function",
        help="What to do with each document: a registered name (ingest, noop, sleep) or "
        "module:function.",
    ),
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help="Processor option, repeatable; VALUE is read as JSON when it parses "
            "(-o seconds=0.1).",
            show_default=False,
        ),
    ] = None,
    sink: Annotated[
        list[str] | None,
        typer.Option(
            "--sink",
            metavar="NAME",
            help="Mirror the chunks into this sink profile of LEDGER_SINKS (repeatable); "
            "needs an embedder (-o embedder=NAME).",
            show_default=False,
        ),
    ] = None,
    priority: int = typer.Option(
        0, "--priority", metavar="N", help="Higher runs first across batches."
    ),
    max_attempts: int | None = typer.Option(
        None,
        "--max-attempts",
        min=1,
        max=1000,
        metavar="N",
        help="Attempts per document. Default: LEDGER_MAX_ATTEMPTS (3).",
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Count the new, changed and unchanged files as the run would; change nothing.",
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print a JSON summary on stdout (progress goes to stderr)."
    ),
    progress_interval: float = typer.Option(
        5.0,
        "--progress-interval",
        min=0.1,
        metavar="SECONDS",
        help="Without a terminal: seconds between progress lines.",
    ),
    sync: bool = typer.Option(
        False,
        "--sync",
        help="Also retire the batch's documents whose file is gone or no longer selected: "
        "their chunks and vectors leave the index.",
    ),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Sync once, then keep watching: new and changed files are processed, deleted "
        "ones retired, until Ctrl-C (needs the 'watch' extra).",
    ),
    debounce: float | None = typer.Option(
        None,
        "--debounce",
        min=0.05,
        max=3600,
        metavar="SECONDS",
        help="With --watch: how long a changed file must stay unchanged before it is taken. "
        "Default: LEDGER_WATCH_DEBOUNCE_SECONDS (1).",
        show_default=False,
    ),
) -> None:
    """Ingest files: submit them as a batch and process it here, with live progress.

    Exit code 0 when every document is done or skipped, 1 when some failed (or the batch
    was paused or cancelled), 130 when interrupted. Ctrl-C once stops after the documents
    in flight; twice stops at once. Run the same command again to continue.
    """
    settings = options(ctx).settings()
    from ledger.cli.walk_objects import parse_prefixes
    from ledger.storage.urls import is_object_url

    if dry_run and (sync or watch):
        raise CliError("--dry-run does not combine with --sync or --watch", EXIT_USAGE)
    if watch:
        from ledger.extras import MissingExtra, require

        try:
            require("watch", "watchfiles", what="ledger ingest --watch")
        except MissingExtra as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
    if (sync or watch) and any(is_object_url(p) for p in paths):
        raise CliError(
            "--sync and --watch keep a folder in step; they do not take s3:// prefixes",
            EXIT_USAGE,
        )
    try:
        prefixes = parse_prefixes([p for p in paths if is_object_url(p)])
    except InvalidInput as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    try:
        roots = resolve_roots([p for p in paths if not is_object_url(p)])
    except FileNotFoundError as exc:
        raise CliError(f"no such file or folder: {exc.args[0]}", EXIT_USAGE) from exc
    except UnicodeError as exc:
        raise CliError(f"path is not valid UTF-8: {exc.args[0]}", EXIT_USAGE) from exc
    opts = parse_options(option or [])
    if all_types:
        if processor != "ingest":
            raise CliError("--all-types is an option of the ingest processor", EXIT_USAGE)
        opts["include_all_types"] = True
    if sink:
        if processor != "ingest":
            raise CliError("--sink is an option of the ingest processor", EXIT_USAGE)
        opts["sinks"] = list(sink)
    try:
        patterns = compile_patterns(include or [], exclude or [])
    except InvalidInput as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    request = Request(
        roots=roots,
        object_roots=prefixes,
        batch_id=batch
        or batch_id_for(
            roots,
            objects=[str(p) for p in prefixes],
            pattern=glob,
            hidden=hidden,
            processor=processor,
            options=opts,
            follow_symlinks=follow_symlinks,
            patterns=patterns,
        ),
        pattern=glob,
        hidden=hidden,
        follow_symlinks=follow_symlinks,
        patterns=patterns,
        processor=processor,
        options=opts,
        priority=priority,
        max_attempts=max_attempts,
        concurrency=concurrency or settings.concurrency,
        dry_run=dry_run,
        json_output=json_output,
        progress_interval=progress_interval,
        sync=sync or watch,
        watch=watch,
        debounce=debounce or settings.watch_debounce_seconds,
    )
    code = asyncio.run(_main(settings, request))
    raise typer.Exit(code)


async def _main(settings: Settings, request: Request) -> int:
    from ledger.cli.runtime import check_processor

    ledger = await open_ledger(settings)
    try:
        check_processor(ledger, request.processor, request.options)
        if request.dry_run:
            from ledger.cli.ingest_plan import plan

            return await plan(ledger, request)
        code = await Session(ledger, request).run()
        if request.options.get("sinks"):
            await _mirror(ledger)
        return code
    finally:
        await ledger.close()


async def _mirror(ledger: Ledger) -> None:
    """Write what the batch owes its sinks now (a worker or server would do it later)."""
    from ledger.sinks.stage import SinkStage

    stage = SinkStage(ledger)
    try:
        rows = await stage.run_once()
    finally:
        await stage.close()
    err.print(f"Sinks: {rows:,} rows written.", markup=False)
