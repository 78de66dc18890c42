"""The claim's index holds the document id, so the claim's order comes from the index.

A claim takes the oldest due documents of a batch, ``ORDER BY next_attempt_at, id``. The
index of 0001 was ``(batch_id, status, next_attempt_at)``. SQLite keeps the row id in every
index entry, in order, so there the claim read only the rows it took. PostgreSQL orders
equal keys by their place in the table, not by id: to find the ``LIMIT`` first it read
every due document of the batch and sorted them, at every claim. A batch submitted at once
has one ``next_attempt_at`` for all its documents, so a claim of 16 from a 10,000-document
batch read and sorted 10,544 rows (3.4 ms); on a million-document batch each claim would
sort a million. With ``id`` as the index's last column both databases read only the rows
they lease.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 15:15:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "ix_documents_batch_id_status_next_attempt_at"
_NEW = "ix_documents_batch_id_status_next_attempt_at_id"


def upgrade() -> None:
    # The new index first: claims keep an index to use while the old one goes.
    op.create_index(_NEW, "documents", ["batch_id", "status", "next_attempt_at", "id"])
    op.drop_index(_OLD, table_name="documents")


def downgrade() -> None:
    op.create_index(_OLD, "documents", ["batch_id", "status", "next_attempt_at"])
    op.drop_index(_NEW, table_name="documents")
