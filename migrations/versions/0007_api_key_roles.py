"""API key roles: 'tenant' (acts as its tenant only) or 'operator' (also process-wide metrics).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite cannot add a CHECK constraint to an existing table otherwise.
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), server_default="tenant", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_api_keys_role_known"), "role IN ('tenant', 'operator')"
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_api_keys_role_known"), type_="check")
        batch_op.drop_column("role")
