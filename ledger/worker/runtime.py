"""The worker: claim due documents, process many at once, record outcomes in groups.

Three cooperating loops share one small in-memory working set that is never the source of
truth: the claimer leases documents and starts one task per document (up to the
concurrency), the committer records finished outcomes in grouped transactions, and the
heartbeat renews the leases of everything not yet recorded. Kill the process at any moment
and the database still says exactly what was done; leases that stop being renewed expire
and the documents are claimed again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import signal
import time
import traceback
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ledger import metrics, storage
from ledger.app import Ledger
from ledger.backpressure import is_throttle
from ledger.db.write_failures import WriteRetry, is_write_failure, write_failed
from ledger.errors import InvalidInput, LedgerError, NotFound, ProcessingError
from ledger.model import ClaimedDocument, CompleteResult, ErrorInfo, Outcome
from ledger.processors.base import (
    Done,
    ProcessorContext,
    ProcessorOutput,
    Skip,
    processor_exit,
)
from ledger.processors.registry import ProcessorRegistry
from ledger.states import AttemptOutcome, DocumentStatus, ErrorCode
from ledger.worker import outcome_prep
from ledger.worker.unreadable import check_row

if TYPE_CHECKING:
    from ledger.worker.pool import ProcessPool

log = logging.getLogger(__name__)

MAX_TRACEBACK = 2_000


@dataclass
class WorkerStats:
    """What one run of a worker did (for summaries; the ledger holds the real record)."""

    claimed: int = 0
    done: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    throttled: int = 0  # rescheduled at the remote side's request, no attempt charged
    returned: int = 0  # leased ahead but never started: given back on stop (not released)
    lost: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        counts = (
            *("claimed", "done", "skipped", "retried", "throttled", "failed", "released"),
            *("returned", "lost"),
        )
        shown = [f"{getattr(self, name):,} {name}" for name in counts if getattr(self, name)]
        return f"{', '.join(shown) or 'nothing claimed'} in {self.elapsed:.1f} s"

    def count(
        self, outcome: Outcome, status: DocumentStatus, recorded: AttemptOutcome | None = None
    ) -> None:
        """Count a recorded outcome by where the ledger put the document (``recorded``:
        what its attempt row says, when the ledger told)."""
        if outcome.outcome is AttemptOutcome.RELEASED:
            self.released += 1
        elif recorded is AttemptOutcome.THROTTLED:
            self.throttled += 1
        elif status is DocumentStatus.DONE:
            self.done += 1
        elif status is DocumentStatus.SKIPPED:
            self.skipped += 1
        elif status is DocumentStatus.PENDING:
            self.retried += 1
        else:
            self.failed += 1


def error_info(exc: BaseException) -> ErrorInfo:
    """How a processor's exception is recorded. Unknown exceptions are retried (they may be
    transient) and count towards the circuit breaker (they are often a bug or an outage)."""
    if isinstance(exc, ProcessingError):
        return ErrorInfo(
            code=exc.code,
            message=exc.message,
            retryable=exc.retryable,
            systemic=exc.systemic,
            retry_after=getattr(exc, "retry_after", None),
            throttled=is_throttle(exc),
        )
    if isinstance(exc, LedgerError):
        return ErrorInfo(code="invalid", message=exc.message, retryable=False, systemic=True)
    summary = "".join(traceback.format_exception(exc, limit=-3))[-MAX_TRACEBACK:]
    return ErrorInfo(
        code=ErrorCode.EXCEPTION.value,
        message=f"{type(exc).__name__}: {exc}\n{summary}",
        retryable=True,
        systemic=True,
    )


class Worker:
    """Processes due documents of every active batch (or of ``batch_ids``) until stopped."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        concurrency: int | None = None,
        batch_ids: Sequence[str] | None = None,
        registry: ProcessorRegistry | None = None,
        pool: ProcessPool | None = None,
        processors: Sequence[str] = (),
    ) -> None:
        settings = ledger.settings
        self.ledger = ledger
        self.concurrency = concurrency or settings.concurrency
        self.batch_ids = list(batch_ids) if batch_ids is not None else None
        self.registry = registry or ProcessorRegistry.from_settings(settings)
        # Processors to run besides the registry's own (the one a CLI run names); a worker
        # bound to batches also takes theirs. Checked at start: see _declare.
        self.extra_processors = list(processors)
        self.processors: list[str] = []
        self.context = ProcessorContext(
            settings=settings,
            pool=pool,
            task_timeout=settings.task_timeout_seconds,
            vectors=ledger.index,
            members=ledger.queue,
        )
        self._owns_pool = pool is None
        self.claim_batch = settings.claim_batch
        self.commit_batch = settings.commit_batch
        self.commit_interval = settings.commit_interval_seconds
        self.poll_seconds = settings.poll_seconds
        self.heartbeat_interval = settings.heartbeat_interval
        self.wake_jitter = settings.wake_jitter_seconds
        self.grace = settings.shutdown_grace_seconds
        self.worker_id: str | None = None
        self.stats = WorkerStats()
        # Documents being processed now, by id (read by progress displays).
        self.current: dict[int, ClaimedDocument] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # Leased ahead, not started yet: a slot that frees starts the next one at once
        # instead of waiting for a claim transaction. At most half the concurrency: if this
        # process dies, every lease it held expires and is charged an attempt, so leasing
        # ahead widens what a crash costs; with concurrency 1 a worker holds one lease.
        # Off unless LEDGER_PREFETCH is set.
        self._ready: collections.deque[ClaimedDocument] = collections.deque()
        self.prefetch = min(self.claim_batch, self.concurrency // 2, settings.prefetch)
        self._lost: set[int] = set()
        self._force_release: set[int] = set()
        self._outbox: list[tuple[ClaimedDocument, Outcome]] = []
        self._outbox_changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped_hard = False
        self._flush_lock = asyncio.Lock()
        self._write_retry = WriteRetry.from_settings(settings)
        # Set when the database refused writes past the retry budget: the run ends with it.
        self.fatal: LedgerError | None = None

    # ------------------------------------------------------------------ control

    def stop(self, *, graceful: bool = True) -> None:
        """First call: stop claiming and let in-flight documents finish (within the grace
        period). A second call, or ``graceful=False``: give in-flight documents back now."""
        if self._stopping or not graceful:
            self._stopped_hard = True
            for doc_id, task in list(self._tasks.items()):
                self._force_release.add(doc_id)
                task.cancel()
        self._stopping = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: first graceful, second immediate."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)

    @property
    def stopping(self) -> bool:
        return self._stopping

    # ------------------------------------------------------------------ main loop

    async def run(self, *, burst: bool = False, until_complete: bool = False) -> WorkerStats:
        """Work until :meth:`stop`; with ``burst``, return once nothing is due and nothing is
        in flight; with ``until_complete``, once every batch in ``batch_ids`` is complete
        (waiting out retry backoff and other workers' leases)."""
        if until_complete and not self.batch_ids:
            raise InvalidInput("until_complete needs batch_ids")
        self.stats = WorkerStats()
        self._open_pool()
        try:
            return await self._run(burst=burst, until_complete=until_complete)
        finally:
            await self._close_pool()

    # ------------------------------------------------------------------ process pool
    # Without a pool given, the worker owns one per run. Children start on first use, so a
    # worker whose processors never need one (noop, sleep, async ones) starts none.

    def _open_pool(self) -> None:
        if self._owns_pool:
            from ledger.worker.pool import ProcessPool

            settings = self.ledger.settings
            self.context.pool = ProcessPool(
                settings.process_workers,
                memory_limit_bytes=settings.task_memory_limit_mb * 2**20,
            )

    async def _close_pool(self) -> None:
        if self._owns_pool and self.context.pool is not None:
            pool, self.context.pool = self.context.pool, None
            await pool.close()

    # ------------------------------------------------------------------ main loop (cont.)

    async def _declare(self) -> list[str]:
        """The processors this worker can run, each imported and checked now; one that
        fails is left out with a warning (its batches wait for a worker that can run it)."""
        extra = list(self.extra_processors)
        for batch_id in self.batch_ids or ():
            try:
                extra.append((await self.ledger.reads.batch(batch_id)).processor)
            except NotFound:
                continue  # not submitted yet: nothing of it to claim either
        names, failed = self.registry.runnable(extra)
        for name, why in failed.items():
            log.warning("processor %s left out: it cannot be loaded here (%s)", name, why)
        return names

    def finished(self) -> int:
        """Documents whose attempt this worker ended done, skipped or failed (this run)."""
        return self.stats.done + self.stats.skipped + self.stats.failed

    async def _run(self, *, burst: bool, until_complete: bool) -> WorkerStats:
        self.processors = await self._declare()
        self.worker_id = await self.ledger.workers.register(
            concurrency=self.concurrency, processors=self.processors
        )
        log.info(
            "worker %s started (concurrency %d; processors %s)",
            self.worker_id,
            self.concurrency,
            ", ".join(self.processors),
        )
        committer = asyncio.create_task(self._commit_loop(), name="ledger-committer")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="ledger-heartbeat")
        listener = self.ledger.queue.due_listener(self._due_announced)  # None on SQLite
        try:
            if listener is not None:
                await listener.start()
            await self._claim_loop(burst=burst, until_complete=until_complete)
            self._release_ready()
            await self._drain()
        finally:
            if listener is not None:
                await listener.stop()
            heartbeat.cancel()
            self._release_ready()
            await self._flush_outbox(final=True)
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.ledger.workers.stopped(self.worker_id, finished=self.finished())
                )
            log.info("worker %s stopped: %s", self.worker_id, self.stats)
        if self.fatal is not None:
            raise self.fatal
        return self.stats

    async def _claim_loop(self, *, burst: bool, until_complete: bool) -> None:
        assert self.worker_id is not None
        while not self._stopping:
            # Cleared before looking at the state, so any change after this wakes the wait.
            self._wake.clear()
            self._fill_slots()
            if self._outbox and not self._tasks:
                # Nothing in flight: record what is done before taking new work, so a
                # document that kills this process cannot take finished ones down with it
                # (their leases would expire and be charged an attempt).
                await self._flush_outbox()
            # Room for every slot plus one prefetch; claim once at least half a prefetch
            # (or a whole claim) is missing, so claims stay large and slots never wait.
            room = self.concurrency + self.prefetch - len(self._tasks) - len(self._ready)
            claimed: list[ClaimedDocument] = []
            if room >= max(1, self.prefetch // 2):
                want = min(room, self.claim_batch)
                began = time.perf_counter()
                claimed = await self._claim(want)
                metrics.observe_claim(time.perf_counter() - began, len(claimed))
                if claimed:  # what processors may skip, for the whole group in one read
                    claimed = await outcome_prep.with_facts(
                        self.ledger, self.registry, self.context, claimed
                    )
                self.stats.claimed += len(claimed)
                self._ready.extend(claimed)
                self._fill_slots()
                if len(claimed) == want and room > want:
                    continue  # more room and more work: claim again at once
            if claimed or self._tasks or self._outbox or self._ready:
                await self._sleep(self.poll_seconds)
                continue
            # Idle: nothing in flight, nothing to record, nothing was due just now.
            if burst:
                return
            if until_complete and await self._batches_complete():
                return
            await self._sleep(await self._idle_wait())

    async def _claim(self, want: int) -> list[ClaimedDocument]:
        assert self.worker_id is not None
        while True:
            try:
                return await self.ledger.queue.claim(
                    self.worker_id, want, batch_ids=self.batch_ids, processors=self.processors
                )
            except Exception as exc:
                if not is_write_failure(exc):
                    raise
                delay = self._write_retry.next_delay()
                if delay is None or self._stopping:
                    raise write_failed(exc) from exc
                log.error("claiming: %s; will retry in %.1f s", write_failed(exc).message, delay)
                await asyncio.sleep(delay)

    async def _batches_complete(self) -> bool:
        assert self.batch_ids is not None
        for batch_id in self.batch_ids:
            batch = await self.ledger.reads.batch(batch_id)
            if not batch.complete:
                return False
        return True

    async def _idle_wait(self) -> float:
        """How long to sleep when idle: until the next retry is due or the first lease runs
        out (its document is then rescued and claimed), at most a poll."""
        wait = self.poll_seconds
        due = await self.ledger.queue.next_due_at(self.batch_ids, processors=self.processors)
        expiry = await self.ledger.queue.earliest_lease_expiry(self.batch_ids)
        if due is not None or expiry is not None:
            now = await self.ledger.now()
            if due is not None:
                wait = min(wait, max((due - now).total_seconds(), 0.01))
            if expiry is not None:
                # Jittered: after a mass expiry the idle fleet must not claim all at once.
                late = random.uniform(0, self.wake_jitter)
                wait = min(wait, max((expiry - now).total_seconds(), 0.0) + 0.01 + late)
        return wait

    def _due_announced(self, batch_id: str | None) -> None:
        """Documents became due (announced by the database): claim soon, after a small
        random delay so that a fleet of idle workers does not claim at the same instant."""
        if batch_id is not None and self.batch_ids is not None and batch_id not in self.batch_ids:
            return
        delay = random.uniform(0, self.wake_jitter)
        asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def _drain(self) -> None:
        """After stop: wait for in-flight documents (grace period), then give back the rest."""
        if self._tasks and not self._stopped_hard:
            log.info("waiting up to %.0f s for %d documents", self.grace, len(self._tasks))
            _done, pending = await asyncio.wait(list(self._tasks.values()), timeout=self.grace)
            if pending:
                self.stop(graceful=False)
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    # ------------------------------------------------------------------ per document

    def _fill_slots(self) -> None:
        """Start prefetched documents in the free slots (not once stopping)."""
        while self._ready and len(self._tasks) < self.concurrency and not self._stopping:
            self._start(self._ready.popleft())

    def _release_ready(self) -> None:
        """Give back the documents leased ahead but never started (on stop)."""
        while self._ready:
            doc = self._ready.popleft()
            self._outbox.append((doc, Outcome.returned(doc)))
        self._outbox_changed.set()

    def _start(self, doc: ClaimedDocument) -> None:
        self.current[doc.id] = doc
        task = asyncio.create_task(self._process(doc), name=f"ledger-doc-{doc.id}")
        self._tasks[doc.id] = task

    async def _process(self, doc: ClaimedDocument) -> None:
        outcome: Outcome | None = None
        began = time.perf_counter()
        try:
            check_row(doc)
            processor = self.registry.get(self.context, doc.processor, doc.options)
            await storage.check_readable_async(doc.source, self.ledger.settings.storage)
            output: ProcessorOutput = await processor(doc)
            made = _outcome_of(doc, output)
            try:  # chunks read or staged now: the finish transaction reads no file
                outcome = await outcome_prep.prepare(self.ledger, doc, made)
            except BaseException:
                _cleanup([made])
                raise
        except asyncio.CancelledError:
            if doc.id in self._force_release:
                outcome = Outcome.released(doc)
            # A lost lease: the new owner records the outcome, not us.
        except Exception as exc:  # the per-document boundary: becomes that document's error
            info = error_info(exc)
            if info.code == ErrorCode.EXCEPTION.value:
                log.warning("document %s (%s) raised %s", doc.id, doc.source, info.message)
            outcome = Outcome.failed(doc, info)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt ... from a processor
            # Raised on the event loop, it would stop this worker (and the server it runs in)
            # on every restart, as the document is claimed again: it fails this document only.
            log.warning("document %s (%s): processor raised %r", doc.id, doc.source, exc)
            outcome = Outcome.failed(doc, error_info(processor_exit(exc)))
        finally:
            self._tasks.pop(doc.id, None)
            self.current.pop(doc.id, None)
            self._force_release.discard(doc.id)
            if outcome is not None:
                metrics.observe_processed(
                    doc.processor, outcome.outcome.value, time.perf_counter() - began
                )
            if outcome is not None and doc.id not in self._lost:
                self._outbox.append((doc, outcome))
                self._outbox_changed.set()
            elif outcome is not None:
                _cleanup([outcome])
            self._lost.discard(doc.id)
            self._fill_slots()
            self._wake.set()

    # ------------------------------------------------------------------ committing

    async def _commit_loop(self) -> None:
        while True:
            await self._outbox_changed.wait()
            self._outbox_changed.clear()
            if len(self._outbox) < self.commit_batch and self.commit_interval > 0:
                # Group commit: wait a moment for more outcomes to share the transaction.
                await asyncio.sleep(self.commit_interval)
            await self._flush_outbox()

    async def _flush_outbox(self, *, final: bool = False) -> None:
        async with self._flush_lock:  # one flusher at a time: never record an outcome twice
            await self._flush_locked(final=final)

    async def _flush_locked(self, *, final: bool) -> None:
        failures = 0
        while self._outbox:
            group = self._outbox[: self.commit_batch]
            if self.fatal is not None:  # the database refuses writes: leases will expire
                self._give_up(group)
                continue
            try:
                adopted = await self._record(group)
            except Exception as exc:  # database trouble: keep the outcomes, try again
                failures += 1
                log.error("recording %d outcomes failed (%s); will retry", len(group), exc)
                if is_write_failure(exc):
                    delay = self._write_retry.next_delay()
                    if delay is None or self._stopped_hard:
                        self.fatal = write_failed(exc)
                        self.stop(graceful=False)
                        continue
                elif final and (failures >= 5 or self._stopped_hard):
                    self._give_up(group)
                    continue
                else:
                    delay = min(0.1 * 2**failures, 5.0)
                await asyncio.sleep(delay)
                continue
            del self._outbox[: len(group)]
            _cleanup([o for _, o in group], adopted)
            failures = 0
            self._write_retry.reset()
            self._wake.set()

    def _give_up(self, group: list[tuple[ClaimedDocument, Outcome]]) -> None:
        log.error("giving up on %d outcomes; their leases will expire", len(group))
        del self._outbox[: len(group)]
        _cleanup([o for _, o in group])

    async def _record(self, group: list[tuple[ClaimedDocument, Outcome]]) -> set[int]:
        """Record the group's outcomes; the ids of those whose children were created."""
        assert self.worker_id is not None
        try:
            result = await self.ledger.queue.complete(self.worker_id, [o for _, o in group])
        except Exception:
            if len(group) == 1:
                raise
            # One document's writes may be what fails: record one at a time to find it.
            done: set[int] = set()
            for item in group:
                done |= await self._record_single(item)
            return done
        self._tally(group, result)
        return set(result.adopted)

    async def _record_single(self, item: tuple[ClaimedDocument, Outcome]) -> set[int]:
        assert self.worker_id is not None
        doc, outcome = item
        try:
            result = await self.ledger.queue.complete(self.worker_id, [outcome])
        except Exception as exc:
            if outcome.index is None and outcome.children is None:
                raise
            # Storing what the processor produced failed: that is this document's error.
            info = ErrorInfo(
                code="store_failed",
                message=f"storing the result failed: {type(exc).__name__}: {exc}",
                retryable=True,
            )
            await outcome_prep.unstage(self.ledger, doc, outcome)
            result = await self.ledger.queue.complete(self.worker_id, [Outcome.failed(doc, info)])
            outcome = Outcome.failed(doc, info)
        self._tally([(doc, outcome)], result)
        return set(result.adopted)

    def _tally(self, group: list[tuple[ClaimedDocument, Outcome]], result: CompleteResult) -> None:
        for doc, outcome in group:
            status = result.statuses.get(doc.id)
            if status is None:
                continue
            if outcome.unstarted:
                self.stats.returned += 1
            else:
                self.stats.count(outcome, status, result.outcomes.get(doc.id))
        if result.lost:
            self.stats.lost += len(result.lost)
            log.warning("lost the lease on %d documents before recording them", len(result.lost))

    # ------------------------------------------------------------------ heartbeat

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._heartbeat()
            except Exception as exc:  # the database is unreachable: leases may run out
                log.error("heartbeat failed: %s", exc)

    async def _heartbeat(self) -> None:
        assert self.worker_id is not None
        # Under the flush lock: an outcome recorded between taking this snapshot and the
        # renewal would otherwise look like a lost lease (its document is no longer running).
        async with self._flush_lock:
            held = [(d.id, d.lease_token) for d in self.current.values()]
            held += [(d.id, d.lease_token) for d in self._ready]
            held += [(d.id, d.lease_token) for d, _ in self._outbox]
            lost = await self.ledger.queue.heartbeat(self.worker_id, held, finished=self.finished())
        if lost:
            gone = set(lost)
            self._ready = collections.deque(d for d in self._ready if d.id not in gone)
        for doc_id in lost:
            task = self._tasks.get(doc_id)
            if task is not None:
                # Someone else owns this document now: stop wasting work on it.
                self._lost.add(doc_id)
                task.cancel()
        if lost:
            self.stats.lost += len(lost)
            log.warning("lost %d leases (expired and taken over)", len(lost))


def _cleanup(outcomes: Sequence[Outcome], adopted: Set[int] = frozenset()) -> None:
    """Run each outcome's cleanup, and its discard unless its children were created (the
    removal of the children they replaced if they were)."""
    for outcome in outcomes:
        calls = [outcome.cleanup]
        if outcome.document_id not in adopted:
            calls.append(outcome.discard)
        else:
            calls.append(outcome.replaced)
        for call in calls:
            if call is None:
                continue
            try:
                call()
            except Exception as exc:  # a leftover file must not stop the worker
                log.warning("cleanup after document %s failed: %s", outcome.document_id, exc)


def _outcome_of(doc: ClaimedDocument, output: ProcessorOutput) -> Outcome:
    if isinstance(output, Done):
        return Outcome.done(
            doc,
            output.result,
            output.index,
            output.cleanup,
            output.children,
            output.discard,
            output.replaced,
        )
    if isinstance(output, Skip):
        return Outcome.skipped(
            doc, {"reason": output.reason, **output.result}, output.index, output.cleanup
        )
    raise TypeError(f"processor returned {type(output).__name__}, not Done or Skip")
