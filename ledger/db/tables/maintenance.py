"""Maintenance tables (migration 0013): its lease and the record of its runs."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    String,
    Table,
    Text,
)

from ledger.db.tables.base import metadata
from ledger.db.types import BigIntId, JSONDoc, UTCDateTime

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
