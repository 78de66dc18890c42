"""Documents whose row cannot be used as text: failed one by one, never the claim loop.

SQLite stores whatever bytes a program writes into a text column. The ledger's own writers
keep out names that are not UTF-8 (the walk skips them), but a row written otherwise still
comes back from the driver with its bad bytes as lone surrogates (see the SQLite driver).
Such a document cannot be opened by name, logged or written back faithfully, so it fails
at once with its own error code and the worker carries on with the rest.
"""

from __future__ import annotations

import json

from ledger.errors import PermanentError
from ledger.model import ClaimedDocument
from ledger.text import is_utf8

UNREADABLE_ROW = "unreadable_row"


def check_row(doc: ClaimedDocument) -> None:
    """Raise a permanent ``unreadable_row`` error when the document's text is not UTF-8."""
    if is_utf8(doc.source) and (
        doc.meta is None or is_utf8(json.dumps(doc.meta, ensure_ascii=False))
    ):
        return
    raise PermanentError(
        UNREADABLE_ROW,
        "the document's row holds text that is not valid UTF-8 (its source or metadata); "
        "it cannot be processed",
    )
