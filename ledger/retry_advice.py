"""Whether retrying a batch's failures can help: the advice the CLI gives after a run.

A document that failed with one of :data:`PERMANENT_CODES` failed because of what the file
is (empty, a format ingest does not read, broken, encrypted, over a cap, outside the
allowed folders): another attempt reads the same bytes and fails the same way. Telling
the user to ``ledger retry`` such a batch sent them round in circles, so the hint is given
only when some failure has another code (a timeout, a crashed worker, an embedder that was
down, a processor's own error): those may pass on a later attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # records load msgspec, which the command line's --help does without
    from ledger.model import FailureGroup

PERMANENT_CODES = frozenset(
    {
        "empty_file",
        "unsupported_type",
        "corrupt",
        "encrypted",
        "no_text",
        "unsafe_archive",
        "unsafe_xml",
        "too_large",
        "outside_roots",
    }
)


def retry_may_help(groups: Sequence[FailureGroup]) -> bool:
    """True when some failure has a code that a later attempt may not meet again."""
    return any(g.code not in PERMANENT_CODES for g in groups)


def failures_advice(batch_id: str, groups: Sequence[FailureGroup]) -> str:
    """One line on what to do about a batch's failures (``groups``: not empty)."""
    if retry_may_help(groups):
        return f"List them all: ledger failures {batch_id}    Retry them: ledger retry {batch_id}"
    total = sum(g.count for g in groups)
    codes = ", ".join(f"{g.code}: {g.count:,}" for g in groups)
    which = "The failure is" if total == 1 else f"All {total:,} failures are"
    return (
        f"{which} permanent ({codes}): retrying will not help, the files themselves are "
        f"the problem; fix or remove them (list them: ledger failures {batch_id})."
    )
