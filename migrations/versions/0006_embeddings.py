"""Embeddings: the vectors of stored chunks, and a cache of vectors by text and model.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "chunk_vectors",
        sa.Column("chunk_id", _ID, nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_chunk_vectors_dimension_positive")),
        sa.CheckConstraint(
            "length(vector) = 4 * dimension", name=op.f("ck_chunk_vectors_vector_length")
        ),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["chunks.id"],
            name=op.f("fk_chunk_vectors_chunk_id_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chunk_id", "model", name=op.f("pk_chunk_vectors")),
    )
    op.create_index(op.f("ix_chunk_vectors_model_chunk_id"), "chunk_vectors", ["model", "chunk_id"])
    op.create_table(
        "embedding_cache",
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("dimension > 0", name=op.f("ck_embedding_cache_dimension_positive")),
        sa.CheckConstraint(
            "length(vector) = 4 * dimension", name=op.f("ck_embedding_cache_vector_length")
        ),
        sa.PrimaryKeyConstraint("text_sha256", "model", name=op.f("pk_embedding_cache")),
    )


def downgrade() -> None:
    op.drop_table("embedding_cache")
    op.drop_index(op.f("ix_chunk_vectors_model_chunk_id"), table_name="chunk_vectors")
    op.drop_table("chunk_vectors")
