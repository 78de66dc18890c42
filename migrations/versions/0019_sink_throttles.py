"""Sink rows count the throttles in a row of their store.

``throttles`` is how many times in a row the row's store answered "slow down" (HTTP 429):
such an answer reschedules the row without spending an attempt until the count reaches
LEDGER_THROTTLE_LIMIT, so a store that throttles for ever still fails the row in the end.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 21:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_sink_rows_throttles_nonnegative"


def upgrade() -> None:
    # Plain ADD COLUMN with the CHECK on the column, on both backends (as in 0017): SQLite
    # can then drop it again without copying the table.
    op.execute(
        "ALTER TABLE sink_rows ADD COLUMN throttles INTEGER DEFAULT 0 NOT NULL "
        f"CONSTRAINT {_CHECK} CHECK (throttles >= 0)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE sink_rows DROP COLUMN throttles")
