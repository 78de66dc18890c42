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
import contextlib
import logging
import random
import time

from ledger import metrics
from ledger.db.lost_connection import is_lost_connection
from ledger.db.write_failures import driver_reason, is_write_failure, write_failed
from ledger.errors import InvalidInput, NotFound
from ledger.model import ClaimedDocument
from ledger.worker import outcome_prep
from ledger.worker.committer import OutcomeCommitter
from ledger.worker.documents import DocumentRunner
from ledger.worker.heartbeat import LeaseKeeper
from ledger.worker.stats import WorkerStats

log = logging.getLogger(__name__)

# The first wait after the database stops answering; it doubles up to 5 s while it lasts.
LOST_CONNECTION_FIRST_DELAY = 0.5


class Worker(DocumentRunner, OutcomeCommitter, LeaseKeeper):
    """Processes due documents of every active batch (or of ``batch_ids``) until stopped."""

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
        outage = 0
        while not self._stopping:
            try:
                if await self._claim_round(burst=burst, until_complete=until_complete):
                    return
                outage = 0
            except Exception as exc:
                if not is_lost_connection(exc):
                    raise
                # A restart or failover of the database: the work in flight goes on, the
                # outcomes wait in the outbox, and claims resume when it answers again.
                outage += 1
                delay = min(LOST_CONNECTION_FIRST_DELAY * 2 ** (outage - 1), 5.0)
                log.error(
                    "the database is unreachable (%s); claiming again in %.1f s",
                    driver_reason(exc),
                    delay,
                )
                await asyncio.sleep(delay)

    async def _claim_round(self, *, burst: bool, until_complete: bool) -> bool:
        """Start what is ready, claim what there is room for, or wait; True when done."""
        # Cleared before looking at the state, so any change after this wakes the wait.
        self._wake.clear()
        self._fill_slots()
        # Room for every slot plus one prefetch; claim once at least half a prefetch
        # (or a whole claim) is missing, so claims stay large and slots never wait.
        room = self.concurrency + self.prefetch - len(self._tasks) - len(self._ready)
        want = min(room, self.claim_batch) if room >= max(1, self.prefetch // 2) else 0
        if self._gather(want):
            await self._sleep(self.poll_seconds)  # a finishing document wakes it
            return False
        claimed: list[ClaimedDocument] = []
        taken: list[ClaimedDocument] | None = None
        first = want
        began = time.perf_counter()
        if self._outbox and not self._tasks:
            # Nothing in flight: record what is done before taking new work, so a
            # document that kills this process cannot take finished ones down with it
            # (their leases would expire and be charged an attempt). The claim rides in
            # the same transaction: one commit, and no slot waits for a second one. A
            # whole wave that finished at once may be refilled in halves (see pacing).
            first = self.pacing.first_claim(want)
            taken = await self._flush_outbox(claim=first)
        if want:
            claimed = taken if taken is not None else await self._claim(want)
            took = time.perf_counter() - began
            metrics.observe_claim(took, len(claimed))
            self.pacing.refilled(took)
            if claimed:  # what processors may skip, for the whole group in one read
                claimed = await outcome_prep.with_facts(
                    self.ledger, self.registry, self.context, claimed
                )
            self.stats.claimed += len(claimed)
            self._ready.extend(claimed)
            self._fill_slots()
            if taken is not None and first < want and len(claimed) == first:
                # The first half of a split wave starts now, before the second is claimed:
                # from here on the halves finish apart.
                await asyncio.sleep(0)
                return False
            if len(claimed) == want and room > want:
                return False  # more room and more work: claim again at once
        if claimed or self._tasks or self._outbox or self._ready:
            await self._sleep(self.poll_seconds)
            return False
        # Idle: nothing in flight, nothing to record, nothing was due just now.
        if burst:
            return True
        if until_complete and await self._batches_complete():
            return True
        await self._sleep(await self._idle_wait())
        return False

    def _gather(self, want: int) -> bool:
        """Whether to wait for more slots to free before claiming ``want`` documents.

        Without leasing ahead, a slot that frees while others are busy would claim one
        document in a transaction of its own. While the process pool has tasks waiting for
        a child, a document claimed now would only wait behind them: the claim waits
        instead, until a quarter of the slots are free or the pool's queue is empty, then
        takes them all in one transaction. It never leases more than the free slots, so a
        crash costs no more; a worker whose documents do not queue for the pool claims as
        soon as a slot frees, as before.
        """
        if not want or self.prefetch or not self._tasks or want >= max(1, self.concurrency // 4):
            return False
        pool = self.context.pool
        return pool is not None and pool.queued > 0

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
            now = await self.ledger.runner.now()
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
