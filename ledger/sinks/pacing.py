"""How many points the sink stage sends a store in one write, adapted to its 429s.

A store's calls run one at a time per sink (the contract in ``ledger/sinks/base.py``), so
what adapts is the size of each write, not a number of writes in flight. The size is the
profile's ``write_size`` (1,000 points unless it says) cut into :data:`STEPS` steps, and
the number of steps is an :class:`ledger.backpressure.Aimd` limit: halved when the store
throttles a write, one step more after a run of successes as long as the limit itself.
The size in points is shown as ``ledger_stage_concurrency{stage="sink:<name>"}``.

Pure arithmetic, no clock: the writer reports each write's outcome.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.backpressure import Aimd

STEPS = 8  # a throttled store gets 1/2, 1/4, 1/8 of the full write size
DEFAULT_WRITE_SIZE = 1_000


class WritePace:
    """The current write size of one sink (see the module docstring)."""

    def __init__(self, write_size: int, *, on_change: Callable[[int], None] | None = None):
        if write_size < 1:
            raise ValueError(f"write_size must be at least 1, not {write_size}")
        self.write_size = write_size
        self.state = Aimd(ceiling=STEPS)
        self._on_change = on_change
        self._report()

    @property
    def points(self) -> int:
        """Points to send in the next write (at least one)."""
        return max(1, -(-self.write_size * self.state.limit // STEPS))

    def started(self) -> int:
        """A write is starting: the token to report its outcome with."""
        return self.state.epoch

    def succeeded(self) -> None:
        """The write started with ``started()`` went through."""
        if self.state.success():
            self._report()

    def throttled(self, token: int) -> None:
        """The write started with ``token`` was throttled by the store."""
        if self.state.throttle(token):
            self._report()

    def _report(self) -> None:
        if self._on_change is not None:
            self._on_change(self.points)
