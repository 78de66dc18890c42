"""PostgreSQL: batch counters kept by one statement-level trigger per UPDATE, not one per row.

The row-level trigger of 0001 updated the batch row once for every document whose status
changed: a claim of 64 documents wrote 64 versions of one ``batches`` row, holding its lock
all the while, and concurrent workers queued behind it. This trigger aggregates the changed
rows of the whole statement (transition tables) and updates each batch row once, locking
the rows in id order so that statements touching several batches cannot deadlock. SQLite is
unchanged (one writer at a time; its row-level trigger costs no lock).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose (a migration must not change when the code does).
STATUSES = ("pending", "running", "done", "failed", "skipped", "cancelled")

_DELTAS = ",\n              ".join(
    f"count(*) FILTER (WHERE n.status = '{s}') - count(*) FILTER (WHERE o.status = '{s}') AS n_{s}"
    for s in STATUSES
)
_ADD = ", ".join(f"n_{s} = b.n_{s} + c.n_{s}" for s in STATUSES)

_STATEMENT_FUNCTION = f"""CREATE OR REPLACE FUNCTION ledger_documents_count_update()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Lock the touched batch rows in one order (by id): two statements that each change
  -- documents of several batches then wait for each other instead of deadlocking.
  PERFORM 1 FROM batches
  WHERE id IN (SELECT n.batch_id FROM new_rows n JOIN old_rows o ON o.id = n.id
               WHERE o.status <> n.status)
  ORDER BY id FOR NO KEY UPDATE;
  UPDATE batches b SET {_ADD}
  FROM (SELECT n.batch_id,
              {_DELTAS}
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE o.status <> n.status
        GROUP BY n.batch_id) c
  WHERE b.id = c.batch_id;
  RETURN NULL;
END $$"""

_STATEMENT_TRIGGER = """CREATE TRIGGER trg_documents_count_update AFTER UPDATE ON documents
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
EXECUTE FUNCTION ledger_documents_count_update()"""

# 0001's row-level version, restored by downgrade.
_ROW_SETS = ", ".join(
    f"n_{s} = n_{s} - (OLD.status = '{s}')::int + (NEW.status = '{s}')::int" for s in STATUSES
)
_ROW_FUNCTION = f"""CREATE OR REPLACE FUNCTION ledger_documents_count_update()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE batches SET {_ROW_SETS} WHERE id = NEW.batch_id;
  RETURN NULL;
END $$"""

_ROW_TRIGGER = """CREATE TRIGGER trg_documents_count_update AFTER UPDATE OF status ON documents
FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION ledger_documents_count_update()"""


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgres():
        return
    op.execute("DROP TRIGGER trg_documents_count_update ON documents")
    op.execute(_STATEMENT_FUNCTION)
    op.execute(_STATEMENT_TRIGGER)


def downgrade() -> None:
    if not _postgres():
        return
    op.execute("DROP TRIGGER trg_documents_count_update ON documents")
    op.execute(_ROW_FUNCTION)
    op.execute(_ROW_TRIGGER)
