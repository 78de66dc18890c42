"""An attempt row is unique by its document and lease token, not by the token alone.

The unique index on ``attempts.lease_token`` put every new attempt row at a random place in
a B-tree of random strings: the finish's attempt insert spent most of its time there (about
two thirds of it on SQLite, measured in ``bench/ledger_overhead.py``). A lease belongs to one
document, so ``(document_id, lease_token)`` keeps the guarantee (an attempt, which is one
lease, is recorded once) while each new row lands next to its document's earlier ones. That
index also serves what ``ix_attempts_document_id`` served (a document's attempts, the
numbering of the next one), so that index goes.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 03:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite copies the table (attempts has no triggers to recreate);
    # PostgreSQL changes the constraints in place.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_attempts_lease_token"), type_="unique")
        batch_op.drop_index(op.f("ix_attempts_document_id"))
        batch_op.create_unique_constraint(
            op.f("uq_attempts_document_id_lease_token"), ["document_id", "lease_token"]
        )


def downgrade() -> None:
    # Tokens are 128 random bits, new at every claim: rows unique per document are unique.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_attempts_document_id_lease_token"), type_="unique")
        batch_op.create_index(op.f("ix_attempts_document_id"), ["document_id"], unique=False)
        batch_op.create_unique_constraint(op.f("uq_attempts_lease_token"), ["lease_token"])
