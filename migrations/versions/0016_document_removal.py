"""Folder sync: a document whose source file is gone is retired, not deleted.

``documents.removed_at`` records when a sync found the document's file gone (or no longer
selected). The row keeps its history (attempts, result) and its status, which is ``done``
or ``skipped``: a CHECK holds that, so the per-status counters stay as they are and a
retired document still counts as finished. Its chunks and vectors are gone from the index
(ledger.queue.retire). A file that comes back is submitted again: the row goes back to
``pending`` with ``removed_at`` cleared, in one update the CHECK allows.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "removed_at IS NULL OR status IN ('done', 'skipped')"
_CHECK_NAME = "ck_documents_removed_only_finished"
_INDEX = "ix_documents_removed"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("documents", sa.Column("removed_at", UTCDateTime(), nullable=True))
        op.execute(f"ALTER TABLE documents ADD CONSTRAINT {_CHECK_NAME} CHECK ({_CHECK})")
    else:
        # A plain ADD COLUMN with its CHECK as a column constraint: SQLite cannot add a
        # table constraint without rebuilding the table (and its triggers and views).
        op.execute(
            "ALTER TABLE documents ADD COLUMN removed_at DATETIME "
            f"CONSTRAINT {_CHECK_NAME} CHECK ({_CHECK})"
        )
    # Counting and listing a batch's retired documents; partial, so it holds only them.
    op.create_index(
        _INDEX,
        "documents",
        ["batch_id"],
        sqlite_where=sa.text("removed_at IS NOT NULL"),
        postgresql_where=sa.text("removed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="documents")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE documents DROP CONSTRAINT {_CHECK_NAME}")
    # A plain DROP COLUMN (SQLite 3.35+ allows it: the CHECK belongs to this column).
    op.drop_column("documents", "removed_at")
