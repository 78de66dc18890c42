"""The ledger's tables. Migrations create them; this module describes them for queries.

The database enforces the state machine: CHECK constraints hold the status values and the
facts that must be true in each status, a trigger (in the migrations) rejects forbidden
status changes, and triggers keep each batch's per-status counters exact.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.db.types import BigIntId, JSONDoc, UTCDateTime
from ledger.states import AttemptOutcome, BatchState, DocumentStatus, UploadState

# The migration whose schema these tables describe. Opening a ledger compares the database
# with it; reading it from the migration scripts instead would load Alembic, a large part
# of a worker's start. A new migration moves it (a test holds it to Alembic's head).
HEAD_REVISION = "0021"

# Every constraint and index gets a stable name: Alembic's SQLite batch mode silently drops
# unnamed CHECK constraints, and stable names make migrations reviewable.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


COUNTED_STATUSES = tuple(DocumentStatus)
_TERMINAL_SQL = _in("status", ("done", "failed", "skipped", "cancelled"))

workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime, nullable=True),
    # The processor names this worker imported and checked at start: it claims only batches
    # whose processor is among them (routing by capability).
    Column("processors", JSONDoc, nullable=False, server_default=text("'[]'")),
    # Documents whose attempt this worker ended as done, skipped or failed; written with each
    # heartbeat and at stop (not in the finish transaction: that one stays short).
    Column("documents_finished", BigIntId, nullable=False, server_default=text("0")),
    CheckConstraint("documents_finished >= 0", name="documents_finished_nonnegative"),
    # Listing newest first; finding the live ones (heartbeat within the lease time).
    Index(None, "started_at", "id"),
    Index(None, "heartbeat_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(500), nullable=True),
    Column("owner", String(200), nullable=True, doc="tenant; NULL for local use"),
    Column("state", String(16), nullable=False, server_default=BatchState.ACTIVE.value),
    Column("pause_reason", Text, nullable=True),
    Column("priority", Integer, nullable=False, server_default=text("0")),
    Column("processor", String(500), nullable=False),
    Column("options", JSONDoc, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column(
        "roots",
        JSONDoc,
        nullable=True,
        doc="the folders (or files) it was submitted from: sources are cited relative to them",
    ),
    # Maintained by triggers on documents in the same transaction as every status change,
    # so progress at millions of documents is one row read, and exact.
    *(
        Column(f"n_{status.value}", BigIntId, nullable=False, server_default=text("0"))
        for status in COUNTED_STATUSES
    ),
    Column(
        "breaker_after_attempt",
        BigIntId,
        nullable=False,
        server_default=text("0"),
        doc="the circuit breaker only looks at attempts with a larger id (reset on resume)",
    ),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True, doc="first claim"),
    Column("completed_at", UTCDateTime, nullable=True, doc="when nothing was left to do"),
    # Migration 0012: set when the batch's deletion starts (ledger.queue.deletion). The batch
    # is then hidden from every read; triggers refuse new documents in it and skip its
    # documents in claims.
    Column("deleting_at", UTCDateTime, nullable=True, doc="when its deletion started"),
    CheckConstraint(_in("state", [s.value for s in BatchState]), name="state_valid"),
    CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
    CheckConstraint("state = 'paused' OR pause_reason IS NULL", name="pause_reason_only_paused"),
    *(
        CheckConstraint(f"n_{status.value} >= 0", name=f"n_{status.value}_nonnegative")
        for status in COUNTED_STATUSES
    ),
    Index(None, "owner", "created_at", "id"),
    Index(None, "created_at", "id"),
)

documents = Table(
    "documents",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "batch_id",
        String(200),
        ForeignKey("batches.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("source", Text, nullable=False, doc="server path or stored-upload reference"),
    Column("source_size", BigIntId, nullable=True),
    Column("source_mtime_ns", BigIntId, nullable=True),
    Column("source_sha256", String(64), nullable=True),
    Column("meta", JSONDoc, nullable=True, doc="for example the uploaded file's name"),
    Column("status", String(16), nullable=False, server_default=DocumentStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100), ForeignKey("workers.id"), nullable=True),
    Column("lease_token", String(32), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("error_code", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("result", JSONDoc, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column(
        "superseded_by",
        BigIntId,
        nullable=True,
        doc="the later document of the same owner and source whose run removed this one's "
        "chunks; NULL while this document's chunks (if any) are the indexed ones",
    ),
    # Migration 0016: set when a folder sync found the source file gone (ledger.queue.retire);
    # the document keeps its finished status and holds no chunks.
    Column("removed_at", UTCDateTime, nullable=True, doc="when its source file was gone"),
    # Migration 0017: a member of an archive or an email (its attachment) is a document of
    # the same batch that names the document it was extracted from and its path inside it.
    Column(
        "parent_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
        doc="the archive or email this document was extracted from; NULL at the top level",
    ),
    Column("member_path", Text, nullable=True, doc="its path inside the parent"),
    UniqueConstraint("batch_id", "source"),
    CheckConstraint(
        "removed_at IS NULL OR status IN ('done', 'skipped')", name="removed_only_finished"
    ),
    CheckConstraint("(parent_id IS NULL) = (member_path IS NULL)", name="member_iff_parent"),
    CheckConstraint(_in("status", [s.value for s in DocumentStatus]), name="status_valid"),
    CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    CheckConstraint(
        "(status = 'running') = (lease_owner IS NOT NULL AND lease_token IS NOT NULL"
        " AND lease_expires_at IS NOT NULL AND started_at IS NOT NULL)",
        name="lease_iff_running",
    ),
    CheckConstraint(
        "status = 'running' OR (lease_owner IS NULL AND lease_token IS NULL"
        " AND lease_expires_at IS NULL)",
        name="no_lease_unless_running",
    ),
    CheckConstraint(f"({_TERMINAL_SQL}) = (finished_at IS NOT NULL)", name="finished_iff_final"),
    CheckConstraint("status <> 'failed' OR error_code IS NOT NULL", name="failed_has_error"),
    CheckConstraint("status <> 'done' OR result IS NOT NULL", name="done_has_result"),
    CheckConstraint("status <> 'running' OR attempts >= 1", name="running_counts_attempt"),
    # The claim: due pending documents of one batch, oldest due first.
    Index(None, "batch_id", "status", "next_attempt_at"),
    # Rescue: expired leases. Partial, so it holds only the few running documents.
    Index(
        "ix_documents_running_lease",
        "lease_expires_at",
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
    # Rate over the recent window and "last finish" per batch.
    Index(None, "batch_id", "finished_at"),
    # Deleting a worker row checks no lease names it (0010). Partial: running ones only.
    Index(
        "ix_documents_lease_owner",
        "lease_owner",
        sqlite_where=text("lease_owner IS NOT NULL"),
        postgresql_where=text("lease_owner IS NOT NULL"),
    ),
    # Dedup ledger: has this content been processed before?
    Index(None, "source_sha256"),
    # A batch's retired documents (0016). Partial: only they are in it.
    Index(
        "ix_documents_removed",
        "batch_id",
        sqlite_where=text("removed_at IS NOT NULL"),
        postgresql_where=text("removed_at IS NOT NULL"),
    ),
    # Has this source been indexed before (by any batch)? A hash index on PostgreSQL: paths
    # can be longer than a B-tree entry may be, and only equality is asked.
    Index("ix_documents_source", "source", postgresql_using="hash"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("batch_id", String(200), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False, doc="1, 2... per document, across retries"),
    # One attempt is one lease: the unique token makes every attempt recorded exactly once.
    Column("lease_token", String(32), nullable=False),
    Column("worker_id", String(100), ForeignKey("workers.id"), nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error_code", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("systemic", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("lease_token"),
    CheckConstraint(_in("outcome", [o.value for o in AttemptOutcome]), name="outcome_valid"),
    CheckConstraint("attempt >= 1", name="attempt_positive"),
    CheckConstraint("finished_at >= started_at", name="finished_after_start"),
    CheckConstraint(
        "outcome IN ('done', 'skipped', 'released') OR error_code IS NOT NULL",
        name="error_has_code",
    ),
    Index(None, "document_id"),
    Index(None, "batch_id", "id"),
    # Deleting an old worker row checks that no attempt names it (0010).
    Index(None, "worker_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("batch_id", String(200), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("document_id", BigIntId, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("data", JSONDoc, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The order in which the log becomes visible. PostgreSQL assigns ids from a sequence
    # before commit, so concurrent transactions commit them out of order; there the column
    # defaults to the writing transaction's id (migration 0010) and readers follow
    # (txid, id) up to the oldest transaction still running. SQLite has one writer at a
    # time, which commits ids in order: the column stays 0 and the order is the id's.
    Column("txid", BigIntId, nullable=False, server_default=text("0")),
    Index(None, "batch_id", "id"),
    Index(None, "batch_id", "txid", "id"),
    Index(None, "created_at"),
)

# --------------------------------------------------------------------------- API (0002)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True, doc="public part of the key, shown in listings"),
    Column("tenant", String(200), nullable=False, doc="the batches.owner this key acts as"),
    Column("prefix", String(32), nullable=False, doc="first characters of the key, for humans"),
    Column("key_sha256", String(64), nullable=False, doc="SHA-256 of the whole key, hex"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column(
        "role",
        String(16),
        nullable=False,
        server_default="tenant",
        doc="'tenant': the tenant's batches only; 'operator': also process-wide /metrics",
    ),
    CheckConstraint("length(key_sha256) = 64", name="hash_length"),
    CheckConstraint("role IN ('tenant', 'operator')", name="role_known"),
    Index(None, "tenant"),
)

# What an API create request asked for, so a retried request is answered from what it made
# (same body: the existing batch; different body: a conflict) instead of re-running it.
batch_requests = Table(
    "batch_requests",
    metadata,
    Column(
        "batch_id",
        String(200),
        ForeignKey("batches.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("fingerprint", String(64), nullable=False, doc="SHA-256 of the canonical request"),
    Column("created_at", UTCDateTime, nullable=False),
)

# --------------------------------------------------------------------------- tus uploads (0004)

_UPLOAD_ENDED_SQL = _in("state", (UploadState.TERMINATED, UploadState.EXPIRED))

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
    CheckConstraint(_in("state", [s.value for s in UploadState]), name="state_valid"),
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

# The chunk index: the text of every done document, in order. Written only in the
# transaction that marks the document done (see ledger.index.chunks), so a document is done
# exactly when all its chunks are here. The full-text index over ``text`` is
# dialect-specific and lives in the migrations only (ledger.db.fts): an FTS5
# external-content table on SQLite, a generated tsvector column with a GIN index on
# PostgreSQL.
chunks = Table(
    "chunks",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("batch_id", String(200), ForeignKey("batches.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("char_start", BigIntId, nullable=False),
    Column("char_end", BigIntId, nullable=False),
    Column("page", Integer, nullable=True, doc="1-based page of the first character (PDF)"),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("document_id", "ordinal"),
    CheckConstraint("ordinal >= 0", name="ordinal_nonnegative"),
    CheckConstraint("char_start >= 0", name="char_start_nonnegative"),
    CheckConstraint("char_end >= char_start", name="char_end_after_start"),
    CheckConstraint("page IS NULL OR page >= 1", name="page_positive"),
    # A batch's chunks in id order, a page at a time (migration 0011).
    Index(None, "batch_id", "id"),
)

# Embeddings (migration 0006). ``chunk_vectors``: the vector of each stored chunk, written in
# the same transaction as the chunk (so a document is done exactly when its chunks and their
# vectors are stored) and removed with it. ``embedding_cache``: every vector ever computed,
# keyed by the SHA-256 of the text and the model, written as soon as the embedder answers
# (so no text is sent to the same model twice, across documents, batches and crashes).
# Vectors are unit-length float32, little-endian: 4 * dimension bytes.
chunk_vectors = Table(
    "chunk_vectors",
    metadata,
    Column(
        "chunk_id",
        BigIntId,
        ForeignKey("chunks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("model", String(200), primary_key=True),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("dimension > 0", name="dimension_positive"),
    CheckConstraint("length(vector) = 4 * dimension", name="vector_length"),
    # The vector search scans one model's vectors in chunk id order.
    Index(None, "model", "chunk_id"),
)

embedding_cache = Table(
    "embedding_cache",
    metadata,
    Column("text_sha256", String(64), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("dimension", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("dimension > 0", name="dimension_positive"),
    CheckConstraint("length(vector) = 4 * dimension", name="vector_length"),
)

# Chunks staged before their document's finish (migration 0020): a big spool is read into
# these rows in short transactions of their own, each fenced by the attempt's lease token,
# so the finish attaches them with one INSERT ... SELECT and reads no file under the write
# lock. Never read by search or exports (they read ``chunks``); the finish deletes the
# document's staged rows, a rescue or the next attempt those of an abandoned attempt.
staged_chunks = Table(
    "staged_chunks",
    metadata,
    Column(
        "document_id",
        BigIntId,
        ForeignKey("documents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("lease_token", String(32), primary_key=True),
    Column("ordinal", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("char_start", BigIntId, nullable=False),
    Column("char_end", BigIntId, nullable=False),
    Column("page", Integer, nullable=True),
    Column("text_sha256", String(64), nullable=True, doc="the embedding cache key, if any"),
    CheckConstraint("ordinal >= 0", name="ordinal_nonnegative"),
)

# --------------------------------------------------------------------------- webhooks (0009)

# A tenant's subscription: where to POST which events, and the secret that signs them
# (Standard Webhooks). The secret is kept because every send signs with it; no face ever
# shows it again after creation.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(200), nullable=True, doc="tenant; NULL for local use"),
    Column("url", Text, nullable=False),
    Column("events", JSONDoc, nullable=False, doc="the event types it hears, a JSON list"),
    Column(
        "failure_threshold",
        Float,
        nullable=False,
        doc="batch.failures fires when the failed share of finished documents exceeds it",
    ),
    Column("secret", String(100), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("failure_threshold >= 0 AND failure_threshold < 1", name="threshold_in_range"),
    Index(None, "owner", "created_at"),
)

# One event for one webhook. ``event_id`` is derived from what happened (webhook, type, batch,
# occurrence), and unique per webhook: detecting the same fact twice (a crash between two
# scans, two scanners) finds the row already there instead of making a second id. ``body``
# is the exact JSON sent on every attempt.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "webhook_id",
        String(32),
        ForeignKey("webhooks.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("batch_id", String(200), nullable=True, doc="no foreign key: it outlives the batch"),
    Column("occurred_at", UTCDateTime, nullable=True, doc="when what it tells happened"),
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_token", String(32), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True, doc="delivered or given up"),
    UniqueConstraint("webhook_id", "event_id"),
    CheckConstraint(_in("status", ("pending", "delivered", "failed")), name="status_valid"),
    CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    CheckConstraint("(status = 'pending') = (finished_at IS NULL)", name="finished_iff_final"),
    CheckConstraint("(lease_token IS NULL) = (lease_expires_at IS NULL)", name="lease_complete"),
    CheckConstraint("status = 'pending' OR lease_token IS NULL", name="lease_only_pending"),
    CheckConstraint("status <> 'delivered' OR attempts >= 1", name="delivered_was_sent"),
    # The sender: due pending deliveries, oldest first.
    Index(None, "status", "next_attempt_at"),
    # The scan: has this webhook heard about this batch yet?
    Index(None, "webhook_id", "batch_id", "event_type"),
)

# Every POST of a delivery: what the receiver answered (or why nothing was answered).
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        BigIntId,
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=True, doc="NULL: delivered or given up"),
    UniqueConstraint("delivery_id", "attempt"),
    CheckConstraint("attempt >= 1", name="attempt_positive"),
    CheckConstraint("status_code IS NOT NULL OR error IS NOT NULL", name="has_outcome"),
)

# --------------------------------------------------------------------------- sinks (0018)

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
    CheckConstraint(_in("status", ("pending", "done", "failed")), name="status_valid"),
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

# --------------------------------------------------------------------------- maintenance (0013)

# The lease that lets one process at a time run maintenance on SQLite (PostgreSQL uses an
# advisory lock instead): one row, taken with a guarded UPDATE while free or expired.
# ``optimized_at`` schedules SQLite's PRAGMA optimize and WAL checkpoint.
maintenance = Table(
    "maintenance",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("owner", String(200), nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("optimized_at", UTCDateTime, nullable=True),
    CheckConstraint("(owner IS NULL) = (expires_at IS NULL)", name="lease_complete"),
)

# What each maintenance run did: counts per step, who ran it, when. Only the last few kept.
maintenance_runs = Table(
    "maintenance_runs",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("runner", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("counts", JSONDoc, nullable=False),
    Column("error", Text, nullable=True),
    CheckConstraint(
        "finished_at IS NULL OR finished_at >= started_at", name="finished_after_start"
    ),
)
