"""The text of a document that comes in numbered parts: slides, sheets, chapters.

Each part is one "page" of the chunks and search hits, the way PDF pages are, so a
citation can say "slide 3" or "sheet 2". Parts end with a blank line that separates
them from the next.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ledger.errors import PermanentError
from ledger.processors.ingest.options import IngestErrorCode


@dataclass(slots=True)
class PagedText:
    pages: int
    pieces: Iterator[tuple[str, int]]  # (text, 1-based part number)


def capped_part(text: str, number: int, what: str, max_chars: int) -> str:
    """``text`` (part ``number``, a ``what`` such as "slide") with its blank-line ending;
    ``PermanentError("too_large")`` when it has more than ``max_chars`` characters."""
    if len(text) > max_chars:
        raise PermanentError(
            IngestErrorCode.TOO_LARGE, f"{what} {number} has more than {max_chars} characters"
        )
    return text.strip() + "\n\n"


def no_text(label: str, parts: int, what: str) -> PermanentError:
    """The error for a document whose ``parts`` parts held no text at all."""
    return PermanentError(IngestErrorCode.NO_TEXT, f"the {label} has {parts} {what}(s) but no text")
