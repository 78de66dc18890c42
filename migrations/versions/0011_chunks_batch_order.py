"""Chunks of a batch in id order: the index on chunks.batch_id becomes (batch_id, id), so
reading a batch's chunks a page at a time after a chunk id is a seek on both backends.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 17:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The new index answers every lookup by batch_id the old one did.
    op.create_index(op.f("ix_chunks_batch_id_id"), "chunks", ["batch_id", "id"], unique=False)
    op.drop_index(op.f("ix_chunks_batch_id"), table_name="chunks")


def downgrade() -> None:
    op.create_index(op.f("ix_chunks_batch_id"), "chunks", ["batch_id"], unique=False)
    op.drop_index(op.f("ix_chunks_batch_id_id"), table_name="chunks")
