"""Ledger core schema: batches, documents, attempts, workers, events; triggers and views.

Revision ID: 0001
Revises:
Create Date: 2026-11-27 20:22:06.283357
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ledger.db.types import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("processor", sa.String(length=500), nullable=False),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column(
            "n_pending",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "n_running",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "n_done",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "n_failed",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "n_skipped",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "n_cancelled",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column(
            "breaker_after_attempt",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "state = 'paused' OR pause_reason IS NULL",
            name=op.f("ck_batches_pause_reason_only_paused"),
        ),
        sa.CheckConstraint(
            "state IN ('active', 'paused', 'cancelled')", name=op.f("ck_batches_state_valid")
        ),
        sa.CheckConstraint("max_attempts >= 1", name=op.f("ck_batches_max_attempts_positive")),
        sa.CheckConstraint("n_cancelled >= 0", name=op.f("ck_batches_n_cancelled_nonnegative")),
        sa.CheckConstraint("n_done >= 0", name=op.f("ck_batches_n_done_nonnegative")),
        sa.CheckConstraint("n_failed >= 0", name=op.f("ck_batches_n_failed_nonnegative")),
        sa.CheckConstraint("n_pending >= 0", name=op.f("ck_batches_n_pending_nonnegative")),
        sa.CheckConstraint("n_running >= 0", name=op.f("ck_batches_n_running_nonnegative")),
        sa.CheckConstraint("n_skipped >= 0", name=op.f("ck_batches_n_skipped_nonnegative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batches_created_at_id"), ["created_at", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_batches_owner_created_at_id"),
            ["owner", "created_at", "id"],
            unique=False,
        )

    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_table(
        "documents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "source_size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "source_mtime_ns", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "(status = 'running') = (lease_owner IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL AND started_at IS NOT NULL)",
            name=op.f("ck_documents_lease_iff_running"),
        ),
        sa.CheckConstraint(
            "(status IN ('done', 'failed', 'skipped', 'cancelled')) = (finished_at IS NOT NULL)",
            name=op.f("ck_documents_finished_iff_final"),
        ),
        sa.CheckConstraint(
            "status <> 'done' OR result IS NOT NULL", name=op.f("ck_documents_done_has_result")
        ),
        sa.CheckConstraint(
            "status <> 'failed' OR error_code IS NOT NULL",
            name=op.f("ck_documents_failed_has_error"),
        ),
        sa.CheckConstraint(
            "status <> 'running' OR attempts >= 1", name=op.f("ck_documents_running_counts_attempt")
        ),
        sa.CheckConstraint(
            "status = 'running' OR (lease_owner IS NULL AND lease_token IS NULL AND lease_expires_at IS NULL)",
            name=op.f("ck_documents_no_lease_unless_running"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed', 'skipped', 'cancelled')",
            name=op.f("ck_documents_status_valid"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_documents_attempts_nonnegative")),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_documents_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lease_owner"], ["workers.id"], name=op.f("fk_documents_lease_owner_workers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("batch_id", "source", name=op.f("uq_documents_batch_id_source")),
    )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_documents_batch_id_finished_at"),
            ["batch_id", "finished_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_documents_batch_id_status_next_attempt_at"),
            ["batch_id", "status", "next_attempt_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_documents_running_lease",
            ["lease_expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.create_index(
            batch_op.f("ix_documents_source_sha256"), ["source_sha256"], unique=False
        )

    op.create_table(
        "events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column(
            "document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_events_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_batch_id_id"), ["batch_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_created_at"), ["created_at"], unique=False)

    op.create_table(
        "attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "document_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("batch_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_token", sa.String(length=32), nullable=False),
        sa.Column("worker_id", sa.String(length=100), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=100), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("systemic", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('done', 'skipped', 'released') OR error_code IS NOT NULL",
            name=op.f("ck_attempts_error_has_code"),
        ),
        sa.CheckConstraint(
            "outcome IN ('done', 'skipped', 'retry', 'failed', 'lease_expired', 'released', 'cancelled')",
            name=op.f("ck_attempts_outcome_valid"),
        ),
        sa.CheckConstraint("attempt >= 1", name=op.f("ck_attempts_attempt_positive")),
        sa.CheckConstraint(
            "finished_at >= started_at", name=op.f("ck_attempts_finished_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_attempts_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_attempts_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_attempts_worker_id_workers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.UniqueConstraint("lease_token", name=op.f("uq_attempts_lease_token")),
    )
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_attempts_batch_id_id"), ["batch_id", "id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_attempts_document_id"), ["document_id"], unique=False)

    _create_triggers_and_views()


def downgrade() -> None:
    _drop_triggers_and_views()
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_document_id"))
        batch_op.drop_index(batch_op.f("ix_attempts_batch_id_id"))

    op.drop_table("attempts")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_created_at"))
        batch_op.drop_index(batch_op.f("ix_events_batch_id_id"))

    op.drop_table("events")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_source_sha256"))
        batch_op.drop_index(
            "ix_documents_running_lease",
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.drop_index(batch_op.f("ix_documents_batch_id_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_documents_batch_id_finished_at"))

    op.drop_table("documents")
    op.drop_table("workers")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_owner_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_batches_created_at_id"))

    op.drop_table("batches")


# The state machine and the counters live in the database, not only in Python: a status
# change that states.DOCUMENT_TRANSITIONS does not allow is rejected by a trigger, and each
# batch's n_<status> counters are kept exact by triggers in the same transaction.
# (The lists are frozen here on purpose: a migration must not change when the code does;
# a test checks that they match ledger.states.)
STATUSES = ("pending", "running", "done", "failed", "skipped", "cancelled")
ALLOWED = (
    "pending>running",
    "pending>cancelled",
    "pending>skipped",
    "running>done",
    "running>failed",
    "running>pending",
    "running>skipped",
    "running>cancelled",
    "failed>pending",
    "done>pending",
    "skipped>pending",
)
_ALLOWED_SQL = ", ".join(f"'{pair}'" for pair in ALLOWED)
_FINISHED = "status IN ('done', 'failed', 'skipped', 'cancelled')"


def _counter_sets(sign: str, row: str, cast: str) -> str:
    return ", ".join(f"n_{s} = n_{s} {sign} ({row}.status = '{s}'){cast}" for s in STATUSES)


def _delta_sets(cast: str) -> str:
    return ", ".join(
        f"n_{s} = n_{s} - (OLD.status = '{s}'){cast} + (NEW.status = '{s}'){cast}" for s in STATUSES
    )


def _sqlite_sql() -> list[str]:
    return [
        f"""CREATE TRIGGER trg_documents_status_transition
        BEFORE UPDATE OF status ON documents FOR EACH ROW
        WHEN OLD.status <> NEW.status AND (OLD.status || '>' || NEW.status) NOT IN ({_ALLOWED_SQL})
        BEGIN SELECT RAISE(ABORT, 'forbidden document status transition'); END""",
        f"""CREATE TRIGGER trg_documents_count_insert AFTER INSERT ON documents FOR EACH ROW
        BEGIN UPDATE batches SET {_counter_sets("+", "NEW", "")} WHERE id = NEW.batch_id; END""",
        f"""CREATE TRIGGER trg_documents_count_delete AFTER DELETE ON documents FOR EACH ROW
        BEGIN UPDATE batches SET {_counter_sets("-", "OLD", "")} WHERE id = OLD.batch_id; END""",
        f"""CREATE TRIGGER trg_documents_count_update AFTER UPDATE OF status ON documents
        FOR EACH ROW WHEN OLD.status <> NEW.status
        BEGIN UPDATE batches SET {_delta_sets("")} WHERE id = NEW.batch_id; END""",
        """CREATE VIEW batch_progress AS
        SELECT p.*,
          CASE WHEN p.total = 0 THEN 100.0
               ELSE round(100.0 * (p.done + p.failed + p.skipped + p.cancelled) / p.total, 2)
          END AS percent,
          CASE WHEN p.last_finished_at > p.first_started_at
               THEN (p.done + p.failed + p.skipped)
                    / ((julianday(p.last_finished_at) - julianday(p.first_started_at)) * 86400.0)
          END AS documents_per_second
        FROM (
          SELECT b.id AS batch_id, b.name, b.owner, b.state, b.pause_reason, b.priority,
            b.n_pending + b.n_running + b.n_done + b.n_failed + b.n_skipped + b.n_cancelled
              AS total,
            b.n_pending AS pending, b.n_running AS running, b.n_done AS done,
            b.n_failed AS failed, b.n_skipped AS skipped, b.n_cancelled AS cancelled,
            b.created_at, b.started_at AS first_started_at,
            (SELECT max(d.finished_at) FROM documents d WHERE d.batch_id = b.id)
              AS last_finished_at,
            b.completed_at
          FROM batches b
        ) p""",
        DOCUMENT_ERRORS_VIEW,
    ]


def _postgres_sql() -> list[str]:
    counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS n_{s}" for s in STATUSES)
    add = ", ".join(f"n_{s} = b.n_{s} + c.n_{s}" for s in STATUSES)
    sub = ", ".join(f"n_{s} = b.n_{s} - c.n_{s}" for s in STATUSES)
    return [
        f"""CREATE FUNCTION ledger_documents_status_transition() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          IF (OLD.status || '>' || NEW.status) NOT IN ({_ALLOWED_SQL}) THEN
            RAISE EXCEPTION 'forbidden document status transition: % -> %',
              OLD.status, NEW.status USING ERRCODE = 'check_violation';
          END IF;
          RETURN NEW;
        END $$""",
        """CREATE TRIGGER trg_documents_status_transition
        BEFORE UPDATE OF status ON documents FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION ledger_documents_status_transition()""",
        # Inserts and deletes come in bulk: one counter update per statement, not per row.
        f"""CREATE FUNCTION ledger_documents_count_insert() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE batches b SET {add}
          FROM (SELECT batch_id, {counts} FROM new_rows GROUP BY batch_id) c
          WHERE b.id = c.batch_id;
          RETURN NULL;
        END $$""",
        """CREATE TRIGGER trg_documents_count_insert AFTER INSERT ON documents
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
        EXECUTE FUNCTION ledger_documents_count_insert()""",
        f"""CREATE FUNCTION ledger_documents_count_delete() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE batches b SET {sub}
          FROM (SELECT batch_id, {counts} FROM old_rows GROUP BY batch_id) c
          WHERE b.id = c.batch_id;
          RETURN NULL;
        END $$""",
        """CREATE TRIGGER trg_documents_count_delete AFTER DELETE ON documents
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION ledger_documents_count_delete()""",
        f"""CREATE FUNCTION ledger_documents_count_update() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE batches SET {_delta_sets("::int")} WHERE id = NEW.batch_id;
          RETURN NULL;
        END $$""",
        """CREATE TRIGGER trg_documents_count_update AFTER UPDATE OF status ON documents
        FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION ledger_documents_count_update()""",
        """CREATE VIEW batch_progress AS
        SELECT p.*,
          CASE WHEN p.total = 0 THEN 100.0
               ELSE round(100.0 * (p.done + p.failed + p.skipped + p.cancelled) / p.total, 2)
          END AS percent,
          CASE WHEN p.last_finished_at > p.first_started_at
               THEN (p.done + p.failed + p.skipped)
                    / extract(epoch FROM p.last_finished_at - p.first_started_at)
          END AS documents_per_second
        FROM (
          SELECT b.id AS batch_id, b.name, b.owner, b.state, b.pause_reason, b.priority,
            b.n_pending + b.n_running + b.n_done + b.n_failed + b.n_skipped + b.n_cancelled
              AS total,
            b.n_pending AS pending, b.n_running AS running, b.n_done AS done,
            b.n_failed AS failed, b.n_skipped AS skipped, b.n_cancelled AS cancelled,
            b.created_at, b.started_at AS first_started_at,
            (SELECT max(d.finished_at) FROM documents d WHERE d.batch_id = b.id)
              AS last_finished_at,
            b.completed_at
          FROM batches b
        ) p""",
        DOCUMENT_ERRORS_VIEW,
    ]


DOCUMENT_ERRORS_VIEW = """CREATE VIEW document_errors AS
    SELECT d.batch_id, d.id AS document_id, d.source, d.status, d.attempts,
      d.error_code, d.error_message, d.next_attempt_at, d.finished_at
    FROM documents d
    WHERE d.error_code IS NOT NULL AND d.status IN ('failed', 'pending')"""


def _create_triggers_and_views() -> None:
    statements = _postgres_sql() if op.get_bind().dialect.name == "postgresql" else _sqlite_sql()
    for statement in statements:
        op.execute(statement)


def _drop_triggers_and_views() -> None:
    op.execute("DROP VIEW IF EXISTS document_errors")
    op.execute("DROP VIEW IF EXISTS batch_progress")
    for name in ("status_transition", "count_insert", "count_delete", "count_update"):
        op.execute(
            f"DROP TRIGGER IF EXISTS trg_documents_{name} ON documents"
            if op.get_bind().dialect.name == "postgresql"
            else f"DROP TRIGGER IF EXISTS trg_documents_{name}"
        )
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP FUNCTION IF EXISTS ledger_documents_{name}()")
