"""Small file steps run on the event loop while the files answer fast, in a thread when not.

A trip to a thread costs more than a small local file's steps. While the loop is busy with
other documents, every system call the thread makes (a stat, an open, a read) gives up the
GIL and then waits to take it back: 2,000 tiny text files took 47 context switches and
about 2 ms of CPU each with their file steps in threads, against under one context switch
and about 1 ms with the steps on the loop.

A step on the loop holds up every other task of the worker, heartbeats included, for as
long as it takes, and a slow or hung filesystem (a network share) must not do that for
long. So the steps run on the loop while they are quick: when their moving average passes
``slow_step`` seconds, or one step alone takes ``stall`` seconds, the steps after go to
threads for ``hold`` seconds, after which the loop is tried again afresh. A single step
held up by a garbage collection or a busy machine moves the average a little and no more.
One :class:`FileSteps` judges one kind of file (documents' sources, the worker's own
spools), as they may lie on different filesystems.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

SLOW_STEP_SECONDS = 0.002
STALL_SECONDS = 0.1
SLOW_HOLD_SECONDS = 30.0
_WEIGHT = 0.1  # of the newest step in the moving average


class FileSteps:
    """Runs blocking file steps on the loop, or in a thread while they are slow (see
    module)."""

    def __init__(
        self,
        *,
        slow_step: float = SLOW_STEP_SECONDS,
        stall: float = STALL_SECONDS,
        hold: float = SLOW_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slow_step = slow_step
        self.stall = stall
        self.hold = hold
        self._clock = clock
        self._threads_until = float("-inf")
        self._average = 0.0

    @property
    def in_threads(self) -> bool:
        """Whether steps go to threads now (recent steps were slow)."""
        return self._clock() < self._threads_until

    async def run(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``step(*args, **kwargs)``: on the loop, or in a thread while steps are slow."""
        if self.in_threads:
            return await asyncio.to_thread(step, *args, **kwargs)
        started = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            self._judge(time.perf_counter() - started)

    def _judge(self, seconds: float) -> None:
        self._average += _WEIGHT * (seconds - self._average)
        if seconds >= self.stall or self._average > self.slow_step:
            self._threads_until = self._clock() + self.hold
            self._average = 0.0  # tried afresh when the hold is over
