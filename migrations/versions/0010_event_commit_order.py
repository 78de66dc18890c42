"""Events carry the writing transaction's id, so readers follow the log in commit order.

PostgreSQL hands out event ids from a sequence before commit: two transactions can commit
ids 6 then 5, and a reader that resumes after 6 would never see 5. The new ``txid`` column
defaults to ``pg_current_xact_id()`` there; readers order by (txid, id) and read only up to
the oldest transaction still running. On SQLite one writer at a time commits ids in order:
the column is 0 and changes nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Rows written before this revision are all committed: 0 puts them first, in id order.
    op.add_column("events", sa.Column("txid", _BIGINT, server_default="0", nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        # xid8 is the 64-bit, epoch-extended transaction id: it never wraps around.
        op.execute(
            "ALTER TABLE events ALTER COLUMN txid SET DEFAULT (pg_current_xact_id()::text::bigint)"
        )
    op.create_index(op.f("ix_events_batch_id_txid_id"), "events", ["batch_id", "txid", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_events_batch_id_txid_id"), table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("txid")
