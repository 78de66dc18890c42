"""In-process workers of ``ledger serve``: kept running, and honest about it.

A worker loop that ends on an unexpected error (a database that refuses writes, a bug)
used to stay down while the server went on answering ``/health`` with "ok", so nothing was
processed and nobody was told. The supervisor starts the loop again after a delay that
doubles from ``LEDGER_WORKER_RESTART_BASE_SECONDS`` up to ``LEDGER_WORKER_RESTART_CAP_SECONDS``,
and while it is down :attr:`problem` says why (``/health`` answers 503 with it). Documents
the stopped loop held are not lost: their leases expire and they are claimed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ledger.app import Ledger
from ledger.worker.runtime import Worker

log = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class WorkerSupervisor:
    """Runs one :class:`Worker` loop until :meth:`stop`, restarting it after errors."""

    def __init__(self, ledger: Ledger, *, concurrency: int | None = None) -> None:
        settings = ledger.settings
        self.ledger = ledger
        self.concurrency = concurrency
        self.base = settings.worker_restart_base_seconds
        self.cap = max(settings.worker_restart_cap_seconds, self.base)
        self.worker: Worker | None = None
        self.restarts = 0
        self.last_error: str | None = None
        self._down_since: float | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    @property
    def problem(self) -> str | None:
        """Why the workers are not running now, or None while they run (or were stopped)."""
        if self._down_since is None or self._stopping:
            return None
        return f"stopped on an error ({self.last_error}); restarting"

    async def run(self) -> None:
        """Run the worker loop, restarting it after each unexpected end, until stopped."""
        delay = self.base
        while not self._stopping:
            self.worker = Worker(self.ledger, concurrency=self.concurrency)
            started = time.monotonic()
            try:
                await self.worker.run()
                if self._stopping:
                    return
                error = "the worker loop ended by itself"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any end but a stop: report it, then start again
                error = _describe(exc)
                log.error("in-process workers stopped on an error", exc_info=exc)
            if self._stopping:
                return
            if time.monotonic() - started > self.cap:
                delay = self.base  # it ran well for a while: this is a new problem
            self.last_error = error
            self._down_since = time.monotonic()
            self.restarts += 1
            log.warning("restarting the in-process workers in %.1f s", delay)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            delay = min(delay * 2, self.cap)
            self._down_since = None

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the loop (and any restart waiting to happen)."""
        self._stopping = True
        self._wake.set()
        if self.worker is not None:
            self.worker.stop(graceful=graceful)
