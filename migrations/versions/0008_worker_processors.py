"""Workers declare the processors they can run, and count what they finished.

A worker claims only batches whose processor is in its ``processors`` list, so a batch that
only one process can run (a ``module:function`` importable there alone) is never failed by
another worker that cannot import it. ``documents_finished`` and the two indexes serve the
listing of workers (newest first) and the question "which live worker can run this?".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 17:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK constraint to an existing table otherwise.
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "processors",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "documents_finished",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                server_default=sa.text("0"),
                nullable=False,
            )
        )
        batch_op.create_check_constraint(
            op.f("ck_workers_documents_finished_nonnegative"), "documents_finished >= 0"
        )
        batch_op.create_index(
            batch_op.f("ix_workers_started_at_id"), ["started_at", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_workers_heartbeat_at"), ["heartbeat_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_workers_heartbeat_at"))
        batch_op.drop_index(batch_op.f("ix_workers_started_at_id"))
        batch_op.drop_constraint(op.f("ck_workers_documents_finished_nonnegative"), type_="check")
        batch_op.drop_column("documents_finished")
        batch_op.drop_column("processors")
