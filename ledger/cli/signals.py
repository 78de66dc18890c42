"""Ctrl-C and SIGTERM for long-running commands: the first asks to stop gracefully, the
second to stop at once."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells do
HARD_EXIT_SECONDS = 3.0


class StopSignals:
    """Turns SIGINT/SIGTERM into calls on the event loop while the block runs.

    A plain ``signal.signal`` handler (not ``loop.add_signal_handler``) so that the flag is
    set even while the loop is busy in synchronous code, such as walking a large folder.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        first: Callable[[int], None],
        second: Callable[[int], None],
        signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
        hard_exit_seconds: float | None = HARD_EXIT_SECONDS,
    ) -> None:
        self._loop = loop
        self._first = first
        self._second = second
        self._signals = signals
        self._hard_exit_seconds = hard_exit_seconds
        self._previous: dict[signal.Signals, Any] = {}
        self.count = 0
        self.last: int | None = None

    @property
    def requested(self) -> bool:
        """True once any stop signal arrived."""
        return self.count > 0

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.last = signum
        callback = self._first if self.count == 1 else self._second
        if self.count == 2 and self._hard_exit_seconds is not None:
            # The second stop must be honoured even when the loop is stuck (a database that
            # does not answer, a flush being retried): if the orderly stop has not ended the
            # process by then, end it. The rows stay consistent: leases simply expire.
            timer = threading.Timer(self._hard_exit_seconds, os._exit, args=(EXIT_INTERRUPTED,))
            timer.daemon = True
            timer.start()
        elif self.count > 2:
            os._exit(EXIT_INTERRUPTED)
        self._loop.call_soon_threadsafe(callback, signum)

    def __enter__(self) -> StopSignals:
        for sig in self._signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
