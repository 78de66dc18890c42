"""The ledger's tables, assembled. Migrations create them; queries read them from here.

The tables are defined by domain in ``ledger/db/tables/``; importing every group here is
what makes ``metadata`` complete, so this is the one module that reads it whole (Alembic's
``env.py``, the model comparison in the migration tests) and the one callers import tables
from. The database enforces the state machine: CHECK constraints hold the status values and
the facts that must be true in each status, a trigger (in the migrations) rejects forbidden
status changes, and triggers keep each batch's per-status counters exact.
"""

from __future__ import annotations

from ledger.db.tables.access import api_keys, batch_requests
from ledger.db.tables.base import NAMING_CONVENTION, metadata
from ledger.db.tables.index import chunk_vectors, chunks, embedding_cache, staged_chunks
from ledger.db.tables.maintenance import maintenance, maintenance_runs
from ledger.db.tables.queue import (
    COUNTED_STATUSES,
    LEASED,
    attempts,
    batches,
    documents,
    events,
    workers,
)
from ledger.db.tables.sinks import sink_rows
from ledger.db.tables.uploads import upload_parts, upload_tails, uploads
from ledger.db.tables.webhooks import webhook_attempts, webhook_deliveries, webhooks

# The migration whose schema these tables describe. Opening a ledger compares the database
# with it; reading it from the migration scripts instead would load Alembic, a large part
# of a worker's start. A new migration moves it (a test holds it to Alembic's head).
HEAD_REVISION = "0024"

__all__ = [
    "COUNTED_STATUSES",
    "HEAD_REVISION",
    "LEASED",
    "NAMING_CONVENTION",
    "api_keys",
    "attempts",
    "batch_requests",
    "batches",
    "chunk_vectors",
    "chunks",
    "documents",
    "embedding_cache",
    "events",
    "maintenance",
    "maintenance_runs",
    "metadata",
    "sink_rows",
    "staged_chunks",
    "upload_parts",
    "upload_tails",
    "uploads",
    "webhook_attempts",
    "webhook_deliveries",
    "webhooks",
    "workers",
]
