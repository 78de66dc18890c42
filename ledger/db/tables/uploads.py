"""Resumable (tus) upload tables (migration 0004): the upload and its stored parts."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.db.tables.base import metadata, sql_in
from ledger.db.types import BigIntId, JSONDoc, UTCDateTime
from ledger.states import UploadState

_UPLOAD_ENDED_SQL = sql_in("state", (UploadState.TERMINATED, UploadState.EXPIRED))

# One resumable upload. The row is the truth about it: ``upload_offset`` counts the bytes that
# are durably in the file at ``path`` (a longer file is cut back to it before the next write),
# and one writer at a time holds it through ``writer_token`` until ``locked_until``.
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True, doc="server-made, the last part of its URL"),
    Column("owner", String(200), nullable=True, doc="tenant; NULL for local use"),
    Column("state", String(16), nullable=False),
    Column("upload_length", BigIntId, nullable=True, doc="total bytes; NULL while deferred"),
    Column("upload_offset", BigIntId, nullable=False, server_default=text("0")),
    Column("metadata_header", Text, nullable=True, doc="Upload-Metadata as the client sent it"),
    Column("meta", JSONDoc, nullable=True, doc="the decoded metadata values"),
    Column("batch_id", String(200), nullable=False, doc="the batch its document goes into"),
    Column("filename", Text, nullable=True, doc="the client's file name, cleaned"),
    Column("processor", String(500), nullable=True, doc="for a batch made on completion"),
    Column("path", Text, nullable=False, doc="the file the bytes are appended to"),
    Column("sha256", String(64), nullable=True, doc="of the whole file, once complete"),
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("writer_token", String(32), nullable=True),
    Column("locked_until", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("ended_at", UTCDateTime, nullable=True, doc="when it was terminated or expired"),
    Column("files_removed_at", UTCDateTime, nullable=True),
    Column(
        "store_upload_id",
        Text,
        nullable=True,
        doc="the object store's multipart upload the bytes go into (LEDGER_STORAGE_URL)",
    ),
    Column(
        "store_key",
        Text,
        CheckConstraint("(store_upload_id IS NULL) = (store_key IS NULL)", name="store_complete"),
        nullable=True,
        doc="the object (s3:// URL) that multipart upload makes (0020)",
    ),
    CheckConstraint(sql_in("state", [s.value for s in UploadState]), name="state_valid"),
    CheckConstraint("upload_offset >= 0", name="offset_nonnegative"),
    CheckConstraint("upload_length IS NULL OR upload_length >= 0", name="length_nonnegative"),
    CheckConstraint(
        "upload_length IS NULL OR upload_offset <= upload_length", name="offset_within_length"
    ),
    CheckConstraint("(writer_token IS NULL) = (locked_until IS NULL)", name="lease_complete"),
    CheckConstraint(
        "state <> 'complete' OR (completed_at IS NOT NULL AND sha256 IS NOT NULL"
        " AND upload_length = upload_offset AND writer_token IS NULL)",
        name="complete_has_file",
    ),
    CheckConstraint(f"({_UPLOAD_ENDED_SQL}) = (ended_at IS NOT NULL)", name="ended_iff_final"),
    CheckConstraint(
        f"files_removed_at IS NULL OR ({_UPLOAD_ENDED_SQL})", name="removed_only_ended"
    ),
    # The cleanup: unfinished uploads past their expiry, ended uploads whose file is left.
    Index(None, "state", "expires_at"),
    Index(None, "owner"),
    # Deleting documents checks this foreign key per row: without an index, a scan each.
    Index(None, "document_id"),
    Index(None, "batch_id"),
)

# An upload kept in the object store while it arrives (see ledger.uploads.parts): the
# parts its multipart upload holds, and the bytes past the last part, too few for a part yet.
upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", String(32), ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False),
    Column("part_number", Integer, nullable=False),
    Column("etag", String(200), nullable=False, doc="as the store answered; checked on completion"),
    Column("start_offset", BigIntId, nullable=False, doc="the part holds [start, start + size)"),
    Column("size", BigIntId, nullable=False),
    PrimaryKeyConstraint("upload_id", "part_number"),
    UniqueConstraint("upload_id", "start_offset"),
    CheckConstraint("part_number BETWEEN 1 AND 10000", name="part_number_valid"),
    CheckConstraint("start_offset >= 0", name="start_nonnegative"),
    CheckConstraint("size > 0", name="size_positive"),
)

upload_tails = Table(
    "upload_tails",
    metadata,
    Column("upload_id", String(32), ForeignKey("uploads.id", ondelete="CASCADE"), nullable=False),
    Column("start_offset", BigIntId, nullable=False),
    Column("data", LargeBinary, nullable=False, doc="less than one part in all, per upload"),
    PrimaryKeyConstraint("upload_id", "start_offset"),
    CheckConstraint("start_offset >= 0", name="start_nonnegative"),
)
