"""Staged chunks: a document's chunks written before its finish, attached by it.

The finish transaction holds SQLite's write lock (or PostgreSQL's row locks) and must read no
file: the chunks of a big spool are staged here first, in short transactions fenced by the
attempt's lease token, and the finish moves them into ``chunks`` with one statement.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import BigIntId

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staged_chunks",
        sa.Column("document_id", BigIntId, nullable=False),
        sa.Column("lease_token", sa.String(32), nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("char_start", BigIntId, nullable=False),
        sa.Column("char_end", BigIntId, nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("text_sha256", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_staged_chunks_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "document_id", "lease_token", "ordinal", name=op.f("pk_staged_chunks")
        ),
        sa.CheckConstraint("ordinal >= 0", name=op.f("ck_staged_chunks_ordinal_nonnegative")),
    )


def downgrade() -> None:
    op.drop_table("staged_chunks")
