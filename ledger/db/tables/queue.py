"""The queue's tables: workers, batches, their documents, each attempt and the events.

The database enforces the state machine: CHECK constraints hold the status values and the
facts that must be true in each status, a trigger (in the migrations) rejects forbidden
status changes, and triggers keep each batch's per-status counters exact.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from ledger.db.tables.base import metadata, sql_in
from ledger.db.types import BigIntId, JSONDoc, UTCDateTime
from ledger.states import AttemptOutcome, BatchState, DocumentStatus

COUNTED_STATUSES = tuple(DocumentStatus)
_TERMINAL_SQL = sql_in("status", ("done", "failed", "skipped", "cancelled"))

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
    CheckConstraint(sql_in("state", [s.value for s in BatchState]), name="state_valid"),
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
    CheckConstraint(sql_in("status", [s.value for s in DocumentStatus]), name="status_valid"),
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
    # The claim: due pending documents of one batch, oldest due first, then by id: with the
    # id in the index PostgreSQL reads the claim's order from it instead of sorting every
    # due document of the batch (0024).
    Index(None, "batch_id", "status", "next_attempt_at", "id"),
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

# The running documents, said through their lease: the same rows, by the two CHECK
# constraints above. Statements that pick documents by id say it this way. With
# ``status = 'running'`` PostgreSQL's planner matched the partial index
# ix_documents_running_lease and ANDed a bitmap scan of it with the primary key's. That
# index keeps an entry for every running version of a row until VACUUM, and a bitmap scan
# never marks dead entries, so after 60,000 documents a finish of 64 read 62,000 entries
# (2.5 ms, twice per finish). No index has this predicate.
LEASED = documents.c.lease_token.is_not(None)

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
    # One attempt is one lease: unique per document, every attempt is recorded exactly once.
    Column("lease_token", String(32), nullable=False),
    Column("worker_id", String(100), ForeignKey("workers.id"), nullable=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("duration_seconds", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("error_code", String(100), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("systemic", Boolean, nullable=False, server_default=text("false")),
    # Document first: a new row lands next to its document's earlier attempts, not at a
    # random place among all tokens (0022); it also finds a document's attempts.
    UniqueConstraint("document_id", "lease_token"),
    CheckConstraint(sql_in("outcome", [o.value for o in AttemptOutcome]), name="outcome_valid"),
    CheckConstraint("attempt >= 1", name="attempt_positive"),
    CheckConstraint("finished_at >= started_at", name="finished_after_start"),
    CheckConstraint(
        "outcome IN ('done', 'skipped', 'released') OR error_code IS NOT NULL",
        name="error_has_code",
    ),
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
