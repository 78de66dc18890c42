"""Resumable (tus) uploads as the ledger holds them. Never a response body: ``path`` is
where the bytes are stored and ``writer_token`` fences the request writing them."""

from __future__ import annotations

from datetime import datetime

import msgspec
from msgspec import Struct

from ledger.model.batch import JSON
from ledger.states import UploadState


class UploadSpec(Struct, frozen=True):
    """What a new resumable upload is to become: its size and where its document goes."""

    batch_id: str
    length: int | None  # None: the client tells the length later (deferred)
    owner: str | None = None
    filename: str | None = None
    processor: str | None = None  # for a batch that does not exist yet
    metadata_header: str | None = None
    meta: JSON = msgspec.field(default_factory=dict)


class Upload(Struct, frozen=True):
    """One resumable upload as the ledger holds it. ``offset`` bytes are durably stored."""

    id: str
    owner: str | None
    state: UploadState
    length: int | None
    offset: int
    metadata_header: str | None
    meta: JSON
    batch_id: str
    filename: str | None
    processor: str | None
    path: str
    sha256: str | None
    document_id: int | None
    writer_token: str | None
    locked_until: datetime | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    ended_at: datetime | None
    store_upload_id: str | None = None  # the object store's multipart upload, if kept there
    store_key: str | None = None  # the object (s3:// URL) it makes

    def writer_active(self, now: datetime) -> bool:
        """Whether some request holds this upload's lease at ``now``."""
        return self.locked_until is not None and self.locked_until > now
