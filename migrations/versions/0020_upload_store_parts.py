"""Resumable uploads kept in the object store while they arrive.

``uploads.store_upload_id`` is the store's multipart upload an unfinished upload's bytes go
into (``LEDGER_STORAGE_URL``), ``uploads.store_key`` the object it makes (kept, so a change
of the setting cannot lose track of it); ``upload_parts`` records each part the store holds (number,
ETag, offset range), and ``upload_tails`` the bytes past the last part that are too few for
one yet (the store refuses parts under 5 MiB but the last), so any API server can take the
next request of an upload another one started.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.db.types import BigIntId

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "ck_uploads_store_complete"


def upgrade() -> None:
    # Plain ADD COLUMN with the CHECK on the column, on both backends (as in 0017): SQLite
    # can then drop it again without copying the table.
    op.execute("ALTER TABLE uploads ADD COLUMN store_upload_id TEXT")
    op.execute(
        f"ALTER TABLE uploads ADD COLUMN store_key TEXT CONSTRAINT {_CHECK} "
        "CHECK ((store_upload_id IS NULL) = (store_key IS NULL))"
    )
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("part_number", sa.Integer, nullable=False),
        sa.Column("etag", sa.String(200), nullable=False),
        sa.Column("start_offset", BigIntId, nullable=False),
        sa.Column("size", BigIntId, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_upload_parts")),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name=op.f("fk_upload_parts_upload_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "upload_id", "start_offset", name=op.f("uq_upload_parts_upload_id_start_offset")
        ),
        sa.CheckConstraint(
            "part_number BETWEEN 1 AND 10000", name=op.f("ck_upload_parts_part_number_valid")
        ),
        sa.CheckConstraint("start_offset >= 0", name=op.f("ck_upload_parts_start_nonnegative")),
        sa.CheckConstraint("size > 0", name=op.f("ck_upload_parts_size_positive")),
    )
    op.create_table(
        "upload_tails",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("start_offset", BigIntId, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "start_offset", name=op.f("pk_upload_tails")),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.id"],
            name=op.f("fk_upload_tails_upload_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("start_offset >= 0", name=op.f("ck_upload_tails_start_nonnegative")),
    )


def downgrade() -> None:
    op.drop_table("upload_tails")
    op.drop_table("upload_parts")
    op.execute("ALTER TABLE uploads DROP COLUMN store_key")
    op.execute("ALTER TABLE uploads DROP COLUMN store_upload_id")
