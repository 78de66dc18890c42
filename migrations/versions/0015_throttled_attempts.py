"""Attempts may end ``throttled``: the remote side asked to slow down (HTTP 429), the
document was rescheduled and not charged an attempt.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 20:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("done", "skipped", "retry", "failed", "lease_expired", "released", "cancelled")
_AFTER = (*_BEFORE, "throttled")


def _outcome_in(values: Sequence[str]) -> str:
    return f"outcome IN ({', '.join(repr(v) for v in values)})"


def _replace_check(values: Sequence[str]) -> None:
    # Batch mode: SQLite cannot change a CHECK constraint in place (the attempts table is
    # copied; it has no triggers to recreate). PostgreSQL drops and adds the constraint.
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_attempts_outcome_valid"), type_="check")
        batch_op.create_check_constraint(op.f("ck_attempts_outcome_valid"), _outcome_in(values))


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    # The old schema has no word for a throttle: it is kept as what it most resembles, a
    # retry (an error with its code, the document back to pending). The documents'
    # ``attempts`` counts are left as they are: those attempts were not charged.
    op.execute("UPDATE attempts SET outcome = 'retry' WHERE outcome = 'throttled'")
    _replace_check(_BEFORE)
