"""Batch deletion: a batch being deleted is marked, and no document of it is added or claimed.

Deleting a batch removes its rows in many short transactions (see ledger.queue.deletion), so
a deletion can be interrupted half-way. ``batches.deleting_at`` marks a batch whose deletion
has started: the ledger hides it from every read, a trigger refuses to add a document to it,
and another one skips its documents in any claim (the row stays as it was, so a claim racing
with the start of a deletion on PostgreSQL takes other documents instead of failing).
Nothing half-deleted is ever worked on. Running the deletion again finishes it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DELETING = "(SELECT deleting_at FROM batches WHERE id = NEW.batch_id) IS NOT NULL"

_SQLITE = [
    f"""CREATE TRIGGER trg_documents_deleting_insert BEFORE INSERT ON documents FOR EACH ROW
    WHEN {_DELETING}
    BEGIN SELECT RAISE(ABORT, 'batch is being deleted'); END""",
    f"""CREATE TRIGGER trg_documents_deleting_claim BEFORE UPDATE OF status ON documents
    FOR EACH ROW WHEN NEW.status = 'running' AND OLD.status <> 'running' AND {_DELETING}
    BEGIN SELECT RAISE(IGNORE); END""",
]

# Inserts come in bulk: one check per statement over the inserted rows, not one per row.
_POSTGRES = [
    """CREATE FUNCTION ledger_documents_deleting_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM new_rows n JOIN batches b ON b.id = n.batch_id
                 WHERE b.deleting_at IS NOT NULL) THEN
        RAISE EXCEPTION 'batch is being deleted' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NULL;
    END $$""",
    """CREATE TRIGGER trg_documents_deleting_insert AFTER INSERT ON documents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ledger_documents_deleting_insert()""",
    # Returning NULL from a BEFORE ROW trigger skips that row's update.
    f"""CREATE FUNCTION ledger_documents_deleting_claim() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      IF {_DELETING} THEN
        RETURN NULL;
      END IF;
      RETURN NEW;
    END $$""",
    """CREATE TRIGGER trg_documents_deleting_claim BEFORE UPDATE OF status ON documents
    FOR EACH ROW WHEN (NEW.status = 'running' AND OLD.status <> 'running')
    EXECUTE FUNCTION ledger_documents_deleting_claim()""",
]


def upgrade() -> None:
    # A plain ADD COLUMN: no table rebuild on SQLite (batches is referenced by views and
    # triggers that a batch-mode copy would have to recreate).
    op.add_column("batches", sa.Column("deleting_at", UTCDateTime(), nullable=True))
    # Deleting a document checks uploads.document_id (a foreign key) for every row removed,
    # and a deletion looks the batch's uploads up: both need an index.
    op.create_index(op.f("ix_uploads_document_id"), "uploads", ["document_id"])
    op.create_index(op.f("ix_uploads_batch_id"), "uploads", ["batch_id"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES if postgres else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name in ("insert", "claim"):
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS trg_documents_deleting_{name} ON documents")
            op.execute(f"DROP FUNCTION IF EXISTS ledger_documents_deleting_{name}()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS trg_documents_deleting_{name}")
    op.drop_index(op.f("ix_uploads_batch_id"), table_name="uploads")
    op.drop_index(op.f("ix_uploads_document_id"), table_name="uploads")
    # A plain DROP COLUMN (SQLite 3.35+), for the same reason as the plain ADD COLUMN.
    op.drop_column("batches", "deleting_at")
