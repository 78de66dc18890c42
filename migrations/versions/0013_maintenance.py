"""Maintenance: the lease that lets one process at a time run it, and what each run did.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import JSONDoc, UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    maintenance = op.create_table(
        "maintenance",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("optimized_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "(owner IS NULL) = (expires_at IS NULL)", name=op.f("ck_maintenance_lease_complete")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_maintenance")),
    )
    # The one lease row every runner competes for with a guarded UPDATE.
    op.bulk_insert(maintenance, [{"name": "leader"}])
    op.create_table(
        "maintenance_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("runner", sa.String(length=200), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("counts", JSONDoc, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at",
            name=op.f("ck_maintenance_runs_finished_after_start"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_runs")),
    )
    # Deleting an old worker row makes the database check that no attempt and no lease
    # names it (the foreign keys): without these indexes each check scans the whole table.
    # The documents one is partial: only running documents hold a lease, so it stays tiny.
    op.create_index(op.f("ix_attempts_worker_id"), "attempts", ["worker_id"])
    op.create_index(
        "ix_documents_lease_owner",
        "documents",
        ["lease_owner"],
        sqlite_where=sa.text("lease_owner IS NOT NULL"),
        postgresql_where=sa.text("lease_owner IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_documents_lease_owner", table_name="documents")
    op.drop_index(op.f("ix_attempts_worker_id"), table_name="attempts")
    op.drop_table("maintenance_runs")
    op.drop_table("maintenance")
