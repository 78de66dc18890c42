"""The live view of ``ledger ingest``: a rich progress bar on a terminal, plain progress
lines every few seconds in logs and pipes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ledger.cli import render
from ledger.states import DocumentStatus
from ledger.wording import plural

# rich loads when the command runs, not at --help (docs/benchmarks.md, "Start-up and install").
if TYPE_CHECKING:
    from rich.console import Console

    from ledger.cli.ingest_bar import Bar
    from ledger.cli.ingest_request import Request
    from ledger.model import Progress as BatchProgress
    from ledger.model import SubmitResult

UNCHANGED = "every file is unchanged and already finished"


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
        self._bar.console.print(started_line(result, request), markup=False, highlight=False)

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
        self._print(started_line(result, request))

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


def started_line(result: SubmitResult, request: Request) -> str:
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
