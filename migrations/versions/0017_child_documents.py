"""Documents can be members of another document (an archive's files, an email's attachments).

``parent_id`` names the archive or email a child document was extracted from and
``member_path`` the member's path inside it; both are NULL for a top-level document, both set
for a child (CHECK). Deleting a parent deletes its children (ON DELETE CASCADE), and the
index serves "the children of this document" (replacing them when the parent changes).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 20:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_documents_parent_id_documents"
_CHECK = "ck_documents_member_iff_parent"
_INDEX = "ix_documents_parent_id"


def upgrade() -> None:
    # Plain ADD COLUMN on both backends, constraints written on the columns: a batch-mode
    # copy of documents on SQLite would have to recreate every trigger that keeps the
    # batch counters (SQLite accepts a named REFERENCES and CHECK on an added column).
    id_type = "INTEGER" if op.get_context().dialect.name == "sqlite" else "BIGINT"
    op.execute(
        f"ALTER TABLE documents ADD COLUMN parent_id {id_type} CONSTRAINT {_FK} "
        "REFERENCES documents (id) ON DELETE CASCADE"
    )
    op.execute(
        f"ALTER TABLE documents ADD COLUMN member_path TEXT CONSTRAINT {_CHECK} "
        "CHECK ((parent_id IS NULL) = (member_path IS NULL))"
    )
    op.create_index(_INDEX, "documents", ["parent_id"])


def downgrade() -> None:
    # Children are documents of their own: they stay, as top-level documents without
    # the link (their sources are the extracted files).
    op.drop_index(_INDEX, table_name="documents")
    op.execute("ALTER TABLE documents DROP COLUMN member_path")
    op.execute("ALTER TABLE documents DROP COLUMN parent_id")
