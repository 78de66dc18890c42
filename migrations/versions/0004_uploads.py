"""Resumable (tus) uploads: one row per upload, its offset, lease and outcome.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ledger.db.types import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ENDED = "state IN ('terminated', 'expired')"


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("upload_length", _BIGINT, nullable=True),
        sa.Column("upload_offset", _BIGINT, server_default=sa.text("0"), nullable=False),
        sa.Column("metadata_header", sa.Text(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("processor", sa.String(length=500), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("document_id", _BIGINT, nullable=True),
        sa.Column("writer_token", sa.String(length=32), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("files_removed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('receiving', 'complete', 'terminated', 'expired')",
            name=op.f("ck_uploads_state_valid"),
        ),
        sa.CheckConstraint("upload_offset >= 0", name=op.f("ck_uploads_offset_nonnegative")),
        sa.CheckConstraint(
            "upload_length IS NULL OR upload_length >= 0",
            name=op.f("ck_uploads_length_nonnegative"),
        ),
        sa.CheckConstraint(
            "upload_length IS NULL OR upload_offset <= upload_length",
            name=op.f("ck_uploads_offset_within_length"),
        ),
        sa.CheckConstraint(
            "(writer_token IS NULL) = (locked_until IS NULL)",
            name=op.f("ck_uploads_lease_complete"),
        ),
        sa.CheckConstraint(
            "state <> 'complete' OR (completed_at IS NOT NULL AND sha256 IS NOT NULL"
            " AND upload_length = upload_offset AND writer_token IS NULL)",
            name=op.f("ck_uploads_complete_has_file"),
        ),
        sa.CheckConstraint(
            f"({_ENDED}) = (ended_at IS NOT NULL)", name=op.f("ck_uploads_ended_iff_final")
        ),
        sa.CheckConstraint(
            f"files_removed_at IS NULL OR ({_ENDED})",
            name=op.f("ck_uploads_removed_only_ended"),
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_uploads_document_id_documents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
    )
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_uploads_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_uploads_state_expires_at"), ["state", "expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_uploads_state_expires_at"))
        batch_op.drop_index(batch_op.f("ix_uploads_owner"))
    op.drop_table("uploads")
