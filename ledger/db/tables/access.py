"""Access tables (migration 0002): API keys and the idempotency record of batch requests."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    String,
    Table,
)

from ledger.db.tables.base import metadata
from ledger.db.types import UTCDateTime

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
