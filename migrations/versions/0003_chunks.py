"""Chunk index: chunks with full-text search; documents.superseded_by and a source index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Frozen here on purpose (a migration must not change when the code does).
_SQLITE_FTS = [
    """CREATE VIRTUAL TABLE chunks_fts USING fts5(
        text, content='chunks', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER trg_chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER trg_chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER trg_chunks_fts_update AFTER UPDATE OF text ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END""",
]
# PostgreSQL: a text search configuration like SQLite's tokenizer: words lower-cased and,
# where the unaccent extension exists (it ships with PostgreSQL), accents removed; no
# stemming, no stop words. A configuration name is a constant, so the generated column's
# expression is immutable, as it must be.
_POSTGRES_CONFIG = [
    "CREATE TEXT SEARCH CONFIGURATION ledger_fts (COPY = pg_catalog.simple)",
]
_POSTGRES_UNACCENT = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    """ALTER TEXT SEARCH CONFIGURATION ledger_fts
        ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple""",
]
_POSTGRES_FTS = [
    """ALTER TABLE chunks ADD COLUMN tsv tsvector
        GENERATED ALWAYS AS (to_tsvector('ledger_fts'::regconfig, text)) STORED""",
    "CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)",
]


def _postgres_statements() -> list[str]:
    available = (
        op.get_bind()
        .exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
        .first()
    )
    return _POSTGRES_CONFIG + (_POSTGRES_UNACCENT if available else []) + _POSTGRES_FTS


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "chunks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("document_id", _ID, nullable=False),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("char_start", _ID, nullable=False),
        sa.Column("char_end", _ID, nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("ordinal >= 0", name=op.f("ck_chunks_ordinal_nonnegative")),
        sa.CheckConstraint("char_start >= 0", name=op.f("ck_chunks_char_start_nonnegative")),
        sa.CheckConstraint("char_end >= char_start", name=op.f("ck_chunks_char_end_after_start")),
        sa.CheckConstraint("page IS NULL OR page >= 1", name=op.f("ck_chunks_page_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_chunks_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_chunks_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chunks")),
        sa.UniqueConstraint("document_id", "ordinal", name=op.f("uq_chunks_document_id_ordinal")),
    )
    op.create_index(op.f("ix_chunks_batch_id"), "chunks", ["batch_id"], unique=False)
    for statement in _postgres_statements() if _postgres() else _SQLITE_FTS:
        op.execute(statement)

    # Plain ALTER TABLE, not batch mode: rebuilding `documents` on SQLite would drop its
    # state-machine and counter triggers.
    op.add_column("documents", sa.Column("superseded_by", _ID, nullable=True))
    op.create_index(
        "ix_documents_source", "documents", ["source"], unique=False, postgresql_using="hash"
    )


def downgrade() -> None:
    op.drop_index("ix_documents_source", table_name="documents", postgresql_using="hash")
    op.execute("ALTER TABLE documents DROP COLUMN superseded_by")
    if _postgres():
        op.execute("DROP INDEX IF EXISTS ix_chunks_tsv")
        op.execute("ALTER TABLE chunks DROP COLUMN IF EXISTS tsv")
        op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS ledger_fts")
        # The unaccent extension stays: other schemas may use it.
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_chunks_fts_{name}")
        op.execute("DROP TABLE IF EXISTS chunks_fts")
    op.drop_index(op.f("ix_chunks_batch_id"), table_name="chunks")
    op.drop_table("chunks")
