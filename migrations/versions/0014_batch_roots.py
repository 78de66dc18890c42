"""Batches remember the folders they were submitted from, to cite sources relative to them.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import JSONDoc

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: a batch-mode copy of batches on SQLite would
    # have to recreate the triggers that keep its counts.
    op.add_column("batches", sa.Column("roots", JSONDoc, nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+), for the same reason.
    op.drop_column("batches", "roots")
