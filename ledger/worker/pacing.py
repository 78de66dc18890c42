"""When a whole wave of documents finishes at once, whether to refill the slots in two steps.

Documents started together (the first claim of a run, or a claim that filled every slot)
that take about as long as each other finish together. With nothing else in flight, the
worker records the finished wave and claims the next one in one transaction, and every
slot waits for all of it; the new wave starts together again, and every document of every
wave waits the whole transaction. At concurrency 50 with 50 ms documents that cost a tenth
of the worker's time.

Claiming only half with the record, letting that half start, then claiming the other half
in a transaction of its own splits the wave in two. From then on each half finishes while
the other is still running: its slots are refilled by a claim alone, and the committer
records its outcomes in the background, as it does for any worker whose documents do not
finish together. Nothing is leased ahead and nothing finished waits for new work to start:
the record of the whole wave still comes first.

It pays only when documents take longer than the transactions. Documents that take less
(``noop``) would finish together again before the second claim, and each wave would cost
one transaction more; so the worker splits a wave only once the documents it has processed
typically took at least twice as long as its refills.
"""

from __future__ import annotations

from typing import Final

# Weight of the newest observation in the running averages: a few waves settle them.
WEIGHT: Final = 0.2
# How many times longer than a refill documents must typically take before a wave is split.
STAGGER_RATIO: Final = 2.0


def _average(current: float | None, seconds: float) -> float:
    return seconds if current is None else current + WEIGHT * (seconds - current)


class Pacing:
    """Running averages of how long documents take and how long refilling slots takes."""

    def __init__(self) -> None:
        self.processing: float | None = None  # seconds a document typically takes
        self.refill: float | None = None  # seconds a claim (with its record) typically takes

    def processed(self, seconds: float) -> None:
        self.processing = _average(self.processing, seconds)

    def refilled(self, seconds: float) -> None:
        self.refill = _average(self.refill, seconds)

    def first_claim(self, want: int) -> int:
        """How many of the ``want`` documents to claim with the record of a finished wave:
        all of them, or half when documents typically outlast two refills."""
        if want < 2 or self.processing is None or self.refill is None:
            return want
        if self.processing < STAGGER_RATIO * self.refill:
            return want
        return (want + 1) // 2
