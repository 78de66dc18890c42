"""Documents, their attempts and the event log, as the ledger reads them and clients see them.

Where clients must see less than the ledger holds, the record is its public view plus the
hidden fields (see :mod:`ledger.model.view`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from msgspec import Struct

from ledger.model.batch import JSON
from ledger.model.view import view
from ledger.states import AttemptOutcome, DocumentStatus
from ledger.text import escaped


class DocumentInfo(Struct, frozen=True):
    id: int
    batch_id: str
    source: str
    status: DocumentStatus
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    error_code: str | None
    error_message: str | None
    started_at: datetime | None
    finished_at: datetime | None
    result: JSON | None
    meta: JSON | None
    size: int | None
    sha256: str | None
    created_at: datetime
    # A member of an archive or email: the document it came from and its path inside it.
    parent_id: int | None = None
    member_path: str | None = None

    def public(self) -> DocumentInfo:
        """As sent to clients: a row written by another program may hold a source that is
        not UTF-8, which is escaped rather than failing the answer."""
        member = None if self.member_path is None else escaped(self.member_path)
        return msgspec.structs.replace(self, source=escaped(self.source), member_path=member)


class AttemptView(Struct, frozen=True, kw_only=True):
    """One attempt at a document, as clients see it (under its document)."""

    id: int
    attempt: int
    worker_id: str | None
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    outcome: AttemptOutcome
    error_code: str | None
    error_message: str | None


class AttemptInfo(AttemptView, frozen=True, kw_only=True):
    document_id: int

    def public(self) -> AttemptView:
        return view(self, AttemptView)


class EventView(Struct, frozen=True, kw_only=True):
    """One row of the ledger's event log, as sent in an SSE ``data`` field. Per-document
    events (``document_done``, ``document_failed``, ``document_skipped``,
    ``document_retry``...) carry ``document_id``, ``source``, ``status`` and ``error_code``
    (and ``error_message`` on errors) in ``data``."""

    id: int
    batch_id: str
    document_id: int | None
    kind: str
    data: JSON | None
    created_at: datetime


class Event(EventView, frozen=True, kw_only=True):
    # The document's source, read with the event, so a live view can name what finished.
    document_source: str | None = None

    def public(self) -> EventView:
        return view(self, EventView, data=self._document_data())

    def _document_data(self) -> JSON | None:
        """What a live view needs to show one document's transition without another
        request: its id, source, the status it moved to (``pending`` for a retry) and its
        error code."""
        if self.document_id is None or not self.kind.startswith("document_"):
            return self.data
        extra: dict[str, Any] = dict(self.data) if isinstance(self.data, dict) else {}
        status = self.kind.removeprefix("document_")
        return {
            "document_id": self.document_id,
            "source": self.document_source,
            "status": "pending" if status == "retry" else status,
            "error_code": extra.pop("error_code", None),
            **extra,
        }


class IndexedDocument(Struct, frozen=True):
    """A document whose chunks are the indexed text of its source (done, not superseded)."""

    id: int
    batch_id: str
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    chunks: int | None  # from its result
    etag: str | None = None  # an object's, as recorded at submit; None for a file
