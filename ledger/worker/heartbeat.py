"""The heartbeat: renews the leases of everything not yet recorded, and stops work on
documents whose lease was lost."""

from __future__ import annotations

import asyncio
import collections
import logging

from ledger.worker.state import WorkerState

log = logging.getLogger(__name__)


class LeaseKeeper(WorkerState):
    """Renews the worker's leases every heartbeat interval."""

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
