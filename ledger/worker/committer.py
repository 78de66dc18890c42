"""The committer: records finished outcomes in grouped transactions, retrying through
database trouble, and counts what the ledger made of them."""

from __future__ import annotations

import asyncio
import logging

from ledger.db.write_failures import is_write_failure, write_failed
from ledger.model import ClaimedDocument, CompleteResult, ErrorInfo, Outcome
from ledger.worker import outcome_prep
from ledger.worker.outcomes import clean_up
from ledger.worker.state import WorkerState

log = logging.getLogger(__name__)


class OutcomeCommitter(WorkerState):
    """Records the outbox: group commit, one-at-a-time fallback, give-up when told."""

    async def _commit_loop(self) -> None:
        while True:
            await self._outbox_changed.wait()
            self._outbox_changed.clear()
            if len(self._outbox) < self.commit_batch and self.commit_interval > 0:
                # Group commit: wait a moment for more outcomes to share the transaction.
                await asyncio.sleep(self.commit_interval)
            await self._flush_outbox()

    async def _flush_outbox(
        self, *, final: bool = False, claim: int = 0
    ) -> list[ClaimedDocument] | None:
        """Record the outbox. With ``claim``, the transaction of its last group also leases
        up to that many documents: they are returned, or None when no claim was made."""
        async with self._flush_lock:  # one flusher at a time: never record an outcome twice
            return await self._flush_locked(final=final, claim=claim)

    async def _flush_locked(self, *, final: bool, claim: int = 0) -> list[ClaimedDocument] | None:
        failures = 0
        claimed: list[ClaimedDocument] | None = None
        while self._outbox:
            group = self._outbox[: self.commit_batch]
            if self.fatal is not None:  # the database refuses writes: leases will expire
                self._give_up(group)
                continue
            # Claim with the last group, once: outcomes that arrive while it is recorded
            # make another group, which must not lease again (the first lease would leak).
            last = len(group) == len(self._outbox) and claimed is None
            try:
                adopted, leased = await self._record(group, claim=claim if last else 0)
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
            if leased is not None:
                claimed = leased
            self._leave_outbox(group)
            clean_up([o for _, o in group], adopted)
            failures = 0
            self._write_retry.reset()
            self._wake.set()
        return claimed

    def _give_up(self, group: list[tuple[ClaimedDocument, Outcome]]) -> None:
        log.error("giving up on %d outcomes; their leases will expire", len(group))
        self._leave_outbox(group)
        clean_up([o for _, o in group])

    def _leave_outbox(self, group: list[tuple[ClaimedDocument, Outcome]]) -> None:
        """Take ``group`` (the head of the outbox) out, with what its chunks held in memory."""
        del self._outbox[: len(group)]
        for doc, _ in group:
            self._inline.give_back(doc.id, doc.lease_token)

    async def _record(
        self, group: list[tuple[ClaimedDocument, Outcome]], *, claim: int = 0
    ) -> tuple[set[int], list[ClaimedDocument] | None]:
        """Record the group's outcomes (and with ``claim``, lease new documents in the same
        transaction); the ids of those whose children were created, and what was leased
        (None: no claim was made)."""
        assert self.worker_id is not None
        try:
            result = await self.ledger.queue.complete(
                self.worker_id,
                [o for _, o in group],
                claim=claim,
                batch_ids=self.batch_ids,
                processors=self.processors,
            )
        except Exception:
            if len(group) == 1:
                raise
            # One document's writes may be what fails: record one at a time to find it.
            done: set[int] = set()
            for item in group:
                done |= await self._record_single(item)
            return done, None
        self._tally(group, result)
        return set(result.adopted), result.claimed

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
