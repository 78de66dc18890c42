"""Sink tables (migration 0018): what a vector-store sink must mirror."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.db.tables.base import metadata, sql_in
from ledger.db.types import BigIntId, UTCDateTime

# One row per (sink profile, source key): the version of a source (a document and its
# content hash) a vector-store sink must mirror, or, with no document, that every point of
# the source must go. Written in the transaction that stores or removes the chunks
# (ledger.index.sink_rows); the sink stage leases it, writes the store with no transaction
# open, and commits the outcome fenced by the lease token and ``generation`` (bumped by
# every new version, so an outcome for an older one is never recorded as current). No
# foreign keys: a row outlives the batch and document whose removal it still has to carry
# out in the store.
sink_rows = Table(
    "sink_rows",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("sink", String(64), nullable=False, doc="the operator's sink profile name"),
    Column("source_key", String(64), nullable=False, doc="SHA-256 of owner and source"),
    Column("batch_id", String(200), nullable=False, doc="the batch holding the version"),
    Column("document_id", BigIntId, nullable=True, doc="NULL: remove the source's points"),
    Column("sha256", String(64), nullable=True, doc="content hash of the mirrored version"),
    Column("generation", BigIntId, nullable=False, server_default=text("1")),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column(
        "throttles",
        Integer,
        CheckConstraint("throttles >= 0", name="throttles_nonnegative"),
        nullable=False,
        server_default=text("0"),
        doc="the store's 429s in a row, not charged up to LEDGER_THROTTLE_LIMIT (0019)",
    ),
    Column("points", BigIntId, nullable=True, doc="points the last success wrote"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_token", String(32), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("sink", "source_key"),
    CheckConstraint(sql_in("status", ("pending", "done", "failed")), name="status_valid"),
    CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    CheckConstraint("(status = 'pending') = (finished_at IS NULL)", name="finished_iff_final"),
    CheckConstraint("(lease_token IS NULL) = (lease_expires_at IS NULL)", name="lease_complete"),
    CheckConstraint("status = 'pending' OR lease_token IS NULL", name="lease_only_pending"),
    CheckConstraint("(document_id IS NULL) = (sha256 IS NULL)", name="version_complete"),
    CheckConstraint("status <> 'failed' OR last_error IS NOT NULL", name="failed_has_error"),
    # The sink stage: due pending rows, oldest first.
    Index(None, "status", "next_attempt_at"),
    # A batch's sink progress.
    Index(None, "batch_id", "status"),
    # Removing chunks finds the rows of the documents that lose them.
    Index(None, "document_id"),
)
