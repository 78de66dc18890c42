"""One ``ledger ingest`` run: submit the files, process the batch with a worker here (or
watch the folder), follow its progress, and report how it ended.

Ctrl-C once stops after the documents in flight; twice stops at once. The ledger's rows are
the checkpoint, so running the same command again continues where this run stopped.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger.cli import render
from ledger.cli.app import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    err,
    out,
    real_console,
)
from ledger.cli.ingest_request import Request, profiles_of
from ledger.cli.ingest_summary import print_summary
from ledger.cli.ingest_sync import retire_gone_files, syncs_empty_folder
from ledger.cli.ingest_views import LiveView, PlainView, View
from ledger.cli.signals import StopSignals
from ledger.cli.walk import WalkStats
from ledger.cli.walk_report import nothing_found, report_skipped, skipped_json
from ledger.errors import DatabaseWriteFailed
from ledger.retry_advice import retry_may_help
from ledger.states import BatchState, DocumentStatus
from ledger.wording import plural

# The database, the worker and the processors load when the command runs: --help and the
# other commands need none of them (docs/benchmarks.md, "Start-up and install").
if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.cli.watch import Watcher
    from ledger.model import ClaimedDocument, SourceSpec
    from ledger.model import Progress as BatchProgress
    from ledger.worker.runtime import Worker

FIRST_FAILURES = 5


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
            print_summary(
                final,
                failures.items,
                groups,
                request=req,
                processed=processed,
                elapsed=elapsed,
                code=code,
                stop_reason=self.stop_reason,
                removed=self.removed,
            )
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
        seconds = (due - await self.ledger.runner.now()).total_seconds()
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
