"""Words shared by every face: counted nouns ("1 attempt", "3 attempts", never "1 attempts")
and the note of a batch that waits for a worker."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``count`` and the noun that agrees with it, with thousands separators.

    >>> plural(1, "attempt"), plural(2_000, "entry", "entries")
    ('1 attempt', '2,000 entries')
    """
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"


def waiting_note(processor: str) -> str:
    """What a batch no live worker can run says, in the CLI, the API and the dashboard."""
    return f"waiting: no worker can run processor {processor!r}"
