"""Small file steps run on the event loop while the files answer fast, in a thread when not.

A trip to a thread costs more than a small local file's steps. While the loop is busy with
other documents, every system call the thread makes (a stat, an open, a read) gives up the
GIL and then waits to take it back: 2,000 tiny text files took 47 context switches and
about 2 ms of CPU each with their file steps in threads, against under one context switch
and about 1 ms with the steps on the loop.

A step on the loop holds up every other task of the worker, heartbeats included, for as
long as it takes, and a slow or hung filesystem (a network share) must not do that for
long. So the steps run on the loop while they are quick; one that takes longer than
``slow_step`` seconds sends the steps after it to threads for ``hold`` seconds, after
which the loop is tried again. One :class:`FileSteps` judges one kind of file (documents'
sources, the worker's own spools), as they may lie on different filesystems.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

SLOW_STEP_SECONDS = 0.001
SLOW_HOLD_SECONDS = 30.0


class FileSteps:
    """Runs blocking file steps on the loop, or in a thread after a slow one (see module)."""

    def __init__(
        self,
        *,
        slow_step: float = SLOW_STEP_SECONDS,
        hold: float = SLOW_HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slow_step = slow_step
        self.hold = hold
        self._clock = clock
        self._threads_until = float("-inf")

    @property
    def in_threads(self) -> bool:
        """Whether steps go to threads now (a recent step was slow)."""
        return self._clock() < self._threads_until

    async def run(self, step: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``step(*args, **kwargs)``: on the loop, or in a thread while steps are slow."""
        if self.in_threads:
            return await asyncio.to_thread(step, *args, **kwargs)
        started = time.perf_counter()
        try:
            return step(*args, **kwargs)
        finally:
            if time.perf_counter() - started > self.slow_step:
                self._threads_until = self._clock() + self.hold
