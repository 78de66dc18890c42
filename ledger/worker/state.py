"""The state the worker's loops share: its settings, the in-memory working set (never the
source of truth) and the stop switch."""

from __future__ import annotations

import asyncio
import collections
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ledger.app import Ledger
from ledger.db.write_failures import WriteRetry
from ledger.errors import LedgerError
from ledger.model import ClaimedDocument, Outcome
from ledger.processors.base import ProcessorContext
from ledger.processors.registry import ProcessorRegistry
from ledger.worker.outcome_prep import InlineAllowance
from ledger.worker.pacing import Pacing
from ledger.worker.stats import WorkerStats

if TYPE_CHECKING:
    from ledger.worker.pool import ProcessPool


class WorkerState:
    """Settings and working set of one worker; the loops are added by its subclasses."""

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
        # Spools read into outcomes beyond the small ones: bounded memory across the outbox.
        self._inline = InlineAllowance()
        self._outbox_changed = asyncio.Event()
        # How long documents and refills take: whether a finished wave is refilled in halves.
        self.pacing = Pacing()
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

    def finished(self) -> int:
        """Documents whose attempt this worker ended done, skipped or failed (this run)."""
        return self.stats.done + self.stats.skipped + self.stats.failed
