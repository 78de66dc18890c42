"""What one run of a worker did, counted as its outcomes are recorded."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ledger.model import Outcome
from ledger.states import AttemptOutcome, DocumentStatus


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
