"""Webhook tables (migration 0009): subscriptions, deliveries and each delivery attempt."""

from __future__ import annotations

from sqlalchemy import (
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
    CheckConstraint(sql_in("status", ("pending", "delivered", "failed")), name="status_valid"),
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
