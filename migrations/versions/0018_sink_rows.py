"""Sink rows: which version of each source every vector-store sink must mirror.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 20:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import BigIntId, UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign keys on purpose: a row must outlive the document and the batch whose
    # deletion it records, until the store has dropped their points.
    op.create_table(
        "sink_rows",
        sa.Column("id", BigIntId, primary_key=True, autoincrement=True),
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("source_key", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(200), nullable=False),
        sa.Column("document_id", BigIntId, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("generation", BigIntId, nullable=False, server_default=sa.text("1")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("points", BigIntId, nullable=True),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sink_rows")),
        sa.UniqueConstraint("sink", "source_key", name=op.f("uq_sink_rows_sink_source_key")),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name=op.f("ck_sink_rows_status_valid")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_sink_rows_attempts_nonnegative")),
        sa.CheckConstraint(
            "(status = 'pending') = (finished_at IS NULL)",
            name=op.f("ck_sink_rows_finished_iff_final"),
        ),
        sa.CheckConstraint(
            "(lease_token IS NULL) = (lease_expires_at IS NULL)",
            name=op.f("ck_sink_rows_lease_complete"),
        ),
        sa.CheckConstraint(
            "status = 'pending' OR lease_token IS NULL",
            name=op.f("ck_sink_rows_lease_only_pending"),
        ),
        sa.CheckConstraint(
            "(document_id IS NULL) = (sha256 IS NULL)", name=op.f("ck_sink_rows_version_complete")
        ),
        sa.CheckConstraint(
            "status <> 'failed' OR last_error IS NOT NULL",
            name=op.f("ck_sink_rows_failed_has_error"),
        ),
    )
    op.create_index(
        op.f("ix_sink_rows_status_next_attempt_at"), "sink_rows", ["status", "next_attempt_at"]
    )
    op.create_index(op.f("ix_sink_rows_batch_id_status"), "sink_rows", ["batch_id", "status"])
    op.create_index(op.f("ix_sink_rows_document_id"), "sink_rows", ["document_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sink_rows_document_id"), table_name="sink_rows")
    op.drop_index(op.f("ix_sink_rows_batch_id_status"), table_name="sink_rows")
    op.drop_index(op.f("ix_sink_rows_status_next_attempt_at"), table_name="sink_rows")
    op.drop_table("sink_rows")
