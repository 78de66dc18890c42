"""``ledger ingest``: submit a folder as a batch and process it here, with a live view.

Running the same command twice names the same batch (its id is a hash of what was asked
for), so a second run resumes the first: documents already finished stay finished, and only
the rest are processed. The ledger's rows are the checkpoint; this process keeps nothing
that matters.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import render
from ledger.cli.app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    app,
    err,
    open_ledger,
    options,
    out,
    real_console,
)
from ledger.cli.ingest_request import Request, parse_options, profiles_of
from ledger.cli.ingest_sync import retire_gone_files, syncs_empty_folder
from ledger.cli.signals import StopSignals
from ledger.cli.walk import WalkStats, batch_id_for, resolve_roots
from ledger.cli.walk_report import nothing_found, report_skipped, skipped_json
from ledger.errors import DatabaseWriteFailed, InvalidInput
from ledger.path_patterns import compile_patterns
from ledger.retry_advice import failures_advice, retry_may_help
from ledger.states import BatchState, DocumentStatus
from ledger.wording import plural

# The database, the worker, the processors and rich load when the command runs: --help and
# the other commands need none of them (docs/benchmarks.md, "Start-up and install").
if TYPE_CHECKING:
    from rich.console import Console

    from ledger.app import Ledger
    from ledger.cli.ingest_bar import Bar
    from ledger.cli.watch import Watcher
    from ledger.model import ClaimedDocument, DocumentInfo, FailureGroup, SourceSpec, SubmitResult
    from ledger.model import Progress as BatchProgress
    from ledger.settings import Settings
    from ledger.worker.runtime import Worker

FIRST_FAILURES = 5
UNCHANGED = "every file is unchanged and already finished"


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


# ---------------------------------------------------------------------------- views


class LiveView:
    """A rich progress bar with counts, rate, ETA and the documents in flight."""

    def __init__(self, console: Console) -> None:
        from ledger.cli.ingest_bar import Bar

        self._bar: Bar = Bar(console)
        self._task = self._bar.add_task("Scanning", total=None, counts="", rate="", eta="")
        self._bar.start()

    def scanned(self, files: int) -> None:
        self._bar.update(self._task, counts=f"{plural(files, 'file')} found")

    def started(self, result: SubmitResult, request: Request) -> None:
        b = result.batch
        self._bar.update(self._task, description="Ingesting", total=b.total, completed=b.finished)
        self._bar.console.print(_started_line(result, request), markup=False, highlight=False)

    def update(self, progress: BatchProgress, current: Sequence[str], waiting: str | None) -> None:
        from rich.text import Text

        b = progress.batch
        counts = (
            f"[green]{b.counts[DocumentStatus.DONE]:,} done[/] "
            f"[red]{b.counts[DocumentStatus.FAILED]:,} failed[/] "
            f"[yellow]{b.counts[DocumentStatus.SKIPPED]:,} skipped[/]"
        )
        self._bar.update(
            self._task,
            total=b.total,
            completed=b.finished,
            counts=counts,
            rate=render.rate(progress.rate),
            eta=f"ETA {render.duration(progress.eta_seconds)}",
        )
        if current:
            more = f"  (+{len(current) - 1} more in flight)" if len(current) > 1 else ""
            line = Text.assemble(("  → ", "cyan"), current[0], (more, "dim"))
        elif waiting:
            line = Text(f"  {waiting}", style="dim")
        else:
            line = Text("")
        line.no_wrap = True
        line.overflow = "ellipsis"
        self._bar.current = line

    def note(self, message: str) -> None:
        self._bar.console.print(message, style="yellow", markup=False, highlight=False)

    def close(self) -> None:
        from rich.text import Text

        self._bar.current = Text("")
        self._bar.stop()


class PlainView:
    """Progress as plain lines every few seconds, for logs and pipes."""

    def __init__(self, console: Console, interval: float) -> None:
        self._console = console
        self._interval = interval
        self._last = 0.0
        self._start = time.monotonic()
        self._progress: BatchProgress | None = None
        self._idle = False

    def _print(self, message: str) -> None:
        self._console.print(message, markup=False, highlight=False, soft_wrap=True)

    def scanned(self, files: int) -> None:
        pass

    def started(self, result: SubmitResult, request: Request) -> None:
        self._start = self._last = time.monotonic()
        self._idle = result.batch.complete
        self._print(_started_line(result, request))

    def update(self, progress: BatchProgress, current: Sequence[str], waiting: str | None) -> None:
        self._progress = progress
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._print(self._line(progress, waiting))

    def _line(self, progress: BatchProgress, waiting: str | None) -> str:
        b = progress.batch
        elapsed = render.duration(time.monotonic() - self._start)
        line = (
            f"progress {b.finished:,}/{b.total:,} ({progress.percent:.0f}%): "
            f"{b.counts[DocumentStatus.DONE]:,} done, {b.counts[DocumentStatus.FAILED]:,} failed, "
            f"{b.counts[DocumentStatus.SKIPPED]:,} skipped; {render.rate(progress.rate)}, "
            f"ETA {render.duration(progress.eta_seconds)}, elapsed {elapsed}"
        )
        return line + (f"; {waiting}" if waiting and not b.counts[DocumentStatus.RUNNING] else "")

    def note(self, message: str) -> None:
        self._print(message)

    def close(self) -> None:
        # A run with nothing to do has no progress (and no rate) of its own to report.
        if self._progress is not None and not self._idle:
            self._print(self._line(self._progress, None))


View = LiveView | PlainView


def _started_line(result: SubmitResult, request: Request) -> str:
    b = result.batch
    how = "new batch" if result.created else "resuming batch"
    added = f"{result.added:,} new, {result.known:,} already known"
    if result.skipped:
        added += f"; {result.skipped:,} of the new already indexed, unchanged: skipped"
    left = b.total - b.finished
    if b.total and not left:
        return f"{how} {b.id}: {plural(b.total, 'document')} ({added}); nothing to do: {UNCHANGED}"
    return (
        f"{how} {b.id}: {plural(b.total, 'document')} ({added}), {left:,} to process "
        f"with {b.processor!r}, concurrency {request.concurrency}"
    )


# ---------------------------------------------------------------------------- the run


class _Interrupted(Exception):
    """Ctrl-C while looking for files: the submit transaction rolls back."""


@dataclass
class Session:
    """One ``ledger ingest`` run: submit, process with a worker, watch, summarise."""

    ledger: Ledger
    request: Request
    worker: Worker | None = None
    signals: StopSignals | None = None
    stop_reason: str | None = None
    view: View | None = None
    stats: WalkStats = field(default_factory=WalkStats)
    watcher: Watcher | None = None
    removed: int = 0  # documents retired by --sync / --watch in this run
    _run_start: tuple[float, int] | None = None

    def _make_view(self) -> View:
        console = real_console(err if self.request.json_output else out)
        if console.is_terminal and not console.is_dumb_terminal:
            return LiveView(console)
        return PlainView(console, self.request.progress_interval)

    def _sources(self, view: View) -> Iterator[SourceSpec]:
        req = self.request
        found = req.sources(self.ledger.settings, self.stats)
        for spec in found:
            if self.signals is not None and self.signals.requested:
                raise _Interrupted
            if self.stats.files % 1000 == 0:
                view.scanned(self.stats.files)
            yield spec

    def _on_first(self, signum: int) -> None:
        if self.watcher is not None:
            self.watcher.stop.set()
        if self.worker is None:
            return  # still scanning: the walk sees the flag and stops
        running = len(self.worker.current)
        self.stop_reason = "interrupted"
        if self.view is not None:
            self.view.note(
                f"Stopping after the {running} document(s) in flight finish "
                "(press Ctrl-C again to stop at once)…"
            )
        self.worker.stop(graceful=True)

    def _on_second(self, signum: int) -> None:
        if self.worker is not None:
            if self.view is not None:
                self.view.note("Stopping now.")
            self.worker.stop(graceful=False)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        req = self.request
        with StopSignals(loop, first=self._on_first, second=self._on_second) as signals:
            self.signals = signals
            view = self.view = self._make_view()
            try:
                try:
                    spec = req.spec()
                    sources = self._sources(view)
                    first = next(sources, None)
                    if first is None and not await syncs_empty_folder(self.ledger, req):
                        # No batch for nothing: the command was wrong.
                        view.close()
                        report_skipped(self.stats)
                        err.print(f"error: {nothing_found(req, self.stats)}", markup=False)
                        return EXIT_USAGE
                    from ledger.processors.builtin import unchanged_skip

                    result = await self.ledger.queue.submit(
                        spec,
                        itertools.chain([first] if first else [], sources),
                        skip_unchanged=unchanged_skip(spec, profiles_of(self.ledger)),
                    )
                except _Interrupted:
                    view.close()
                    err.print(
                        "Interrupted while looking for files; nothing was submitted.",
                        markup=False,
                    )
                    return EXIT_INTERRUPTED
                view.started(result, req)
                batch = result.batch
                started = time.monotonic()
                if req.sync and not signals.requested:
                    self.removed += await retire_gone_files(self.ledger, req, batch.id, view)
                    batch = await self.ledger.reads.batch(batch.id)
                if batch.state == BatchState.PAUSED:
                    self.stop_reason = f"batch is paused ({batch.pause_reason})"
                elif req.watch and not signals.requested:
                    await self._watch(view, batch.id)
                elif not batch.complete and not signals.requested:
                    try:
                        await self._process(view, batch.id)
                    except DatabaseWriteFailed:
                        if not signals.requested:
                            raise  # exit code 3; stopped by the user it is still 130
                if signals.requested:
                    self.stop_reason = "interrupted"
                final = await self.ledger.reads.progress(batch.id)
                view.update(final, [], None)
            finally:
                view.close()
            elapsed = time.monotonic() - started
            failures = await self.ledger.reads.documents(
                batch.id, status=DocumentStatus.FAILED, limit=FIRST_FAILURES
            )
            groups = await self.ledger.reads.failures(batch.id) if failures.items else []
        report_skipped(self.stats)
        code = self._exit_code(final)
        # This run's own work: other workers (a server's, say) may serve the same batch.
        processed = self.worker.finished() if self.worker is not None else 0
        others = await self._others_continuing(final)
        if req.json_output:
            render.emit_json(
                {
                    "batch": render.progress_json(final),
                    "created": result.created,
                    "added": result.added,
                    "known": result.known,
                    "skipped_unchanged": result.skipped,
                    "requeued": result.requeued,
                    "removed": self.removed,
                    "processed": processed,
                    "elapsed_seconds": round(elapsed, 3),
                    "rate_per_second": processed / elapsed if elapsed > 0 else None,
                    "interrupted": code == EXIT_INTERRUPTED,
                    "stop_reason": self.stop_reason,
                    "other_workers_continue": others,
                    "first_failures": [render.document_json(d) for d in failures.items],
                    "retry_may_help": retry_may_help(groups),
                    "exit_code": code,
                    **skipped_json(self.stats),
                }
            )
        else:
            self._summary(final, failures.items, groups, processed, elapsed, code)
            if others:
                out.print(
                    f"{plural(others, 'other worker')} that can run processor "
                    f"{final.batch.processor!r} continue this batch "
                    f"(stop them with: ledger pause {final.batch.id}).",
                    markup=False,
                )
        return code

    async def _watch(self, view: View, batch_id: str) -> None:
        from ledger.cli.watch import Watcher

        self.watcher = Watcher(self, view, batch_id, self.request.selection())
        try:
            await self.watcher.run()
        except DatabaseWriteFailed:
            if not self.signals or not self.signals.requested:
                raise
        if self.signals is not None and self.signals.requested:
            self.stop_reason = "watch stopped"

    async def show_progress(
        self, view: View, batch_id: str, last: tuple[int, ...] | None
    ) -> tuple[int, ...]:
        """A progress update of the view, unless nothing is in flight and the counts are
        still ``last`` (an idle watch writes no lines to a log); returns the counts."""
        progress = await self.ledger.reads.progress(batch_id)
        counts = tuple(progress.batch.counts.values())
        current = self._in_flight()
        if current or counts != last:
            view.update(self._this_run(progress), current, None)
        return counts

    async def _others_continuing(self, final: BatchProgress) -> int:
        """How many other live workers go on with this batch after this run stopped."""
        b = final.batch
        if self.worker is None or b.complete or b.state != BatchState.ACTIVE:
            return 0
        return await self.ledger.workers.others_able(b.processor, exclude=self.worker.worker_id)

    async def _process(self, view: View, batch_id: str) -> None:
        from ledger.cli.runtime import make_worker

        req = self.request
        self.worker = make_worker(
            self.ledger,
            concurrency=req.concurrency,
            batch_ids=[batch_id],
            processors=[req.processor],
        )
        task = asyncio.create_task(self.worker.run(until_complete=True))
        poll = 0.25 if isinstance(view, LiveView) else min(1.0, req.progress_interval)
        try:
            while not task.done():
                progress = await self.ledger.reads.progress(batch_id)
                current = self._in_flight()
                waiting = None
                if not current and progress.batch.counts[DocumentStatus.PENDING]:
                    waiting = await self._waiting(batch_id)
                view.update(self._this_run(progress), current, waiting)
                state = progress.batch.state
                if state != BatchState.ACTIVE and self.stop_reason is None:
                    reason = progress.batch.pause_reason
                    why = f" ({reason})" if reason else ""
                    self.stop_reason = f"batch was {state.value}{why}"
                    view.note(f"The {self.stop_reason}; stopping.")
                    self.worker.stop(graceful=True)
                await asyncio.wait({task}, timeout=poll)
        finally:
            if not task.done():  # an error in the loop above: do not leave the worker running
                self.worker.stop(graceful=False)
                await asyncio.wait({task})
        task.result()

    def _this_run(self, progress: BatchProgress) -> BatchProgress:
        """The progress with rate and ETA measured over this run.

        The ledger's rate looks at the batch's recent finishes, which after a resume include
        the idle time between runs; the person watching wants the speed they are seeing.
        """
        if self._run_start is None:
            self._run_start = (time.monotonic(), progress.batch.finished)
            return progress
        started, before = self._run_start
        elapsed = time.monotonic() - started
        processed = progress.batch.finished - before
        if processed <= 0 or elapsed < 1.0:
            return progress
        speed = processed / elapsed
        left = progress.batch.total - progress.batch.finished
        eta = left / speed if progress.batch.state == BatchState.ACTIVE else None
        from msgspec.structs import replace  # not at --help

        return replace(progress, rate=speed, eta_seconds=eta)

    def _in_flight(self) -> list[str]:
        current: dict[int, ClaimedDocument] = getattr(self.worker, "current", {}) or {}
        docs = sorted(current.values(), key=lambda d: d.started_at)
        return [self.request.display(d.source, d.meta) for d in docs]

    async def _waiting(self, batch_id: str) -> str | None:
        due = await self.ledger.queue.next_due_at([batch_id])
        if due is None:
            return None
        seconds = (due - await self.ledger.now()).total_seconds()
        if seconds < 1:  # due now: the worker is about to claim it, nothing to wait for
            return None
        return f"waiting to retry: next attempt in {render.duration(seconds)}"

    def _exit_code(self, final: BatchProgress) -> int:
        b = final.batch
        if self.request.watch and self.signals is not None and self.signals.requested:
            return EXIT_OK  # Ctrl-C is how a watch ends
        if self.signals is not None and self.signals.requested:
            return EXIT_INTERRUPTED
        ok = b.counts[DocumentStatus.DONE] + b.counts[DocumentStatus.SKIPPED]
        return EXIT_OK if ok == b.total else EXIT_FAILED

    def _summary(
        self,
        final: BatchProgress,
        failures: list[DocumentInfo],
        groups: list[FailureGroup],
        processed: int,
        elapsed: float,
        code: int,
    ) -> None:
        from rich.table import Table
        from rich.text import Text

        b = final.batch
        word = render.status_word(b)
        headline = {EXIT_OK: ("Done", "bold green"), EXIT_INTERRUPTED: ("Stopped", "bold yellow")}
        title, style = headline.get(code, ("Finished with problems", "bold red"))
        if code == EXIT_FAILED and self.stop_reason:
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
        if self.removed:
            out.print(
                f"This run retired {plural(self.removed, 'document')} whose file is gone.",
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
                    self.request.display(doc.source, doc.meta),
                    render.first_line(doc.error_message, 120),
                )
            out.print(ft)
            out.print(failures_advice(b.id, groups), style="dim", markup=False)
        if code == EXIT_INTERRUPTED or (self.stop_reason and not b.complete):
            if b.state == BatchState.PAUSED:
                out.print(f"Resume with: ledger resume {b.id}, then run again:", markup=False)
            elif b.state == BatchState.ACTIVE:
                out.print("Continue where it stopped by running the same command:", markup=False)
            if b.state != BatchState.CANCELLED:
                out.print("  " + _same_command(), style="bold", markup=False)


def _same_command() -> str:
    """The command line that was run, ready to paste (minus Python's own arguments)."""
    args = sys.argv[1:]
    program = os.path.basename(sys.argv[0]) if sys.argv else "ledger"
    if program in ("__main__.py", "-m", "-c") or program.startswith("python"):
        program = "ledger"
    return shlex.join([program, *args])
