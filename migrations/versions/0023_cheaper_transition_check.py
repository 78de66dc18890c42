"""SQLite checks a document's status transition with comparisons, not a built string.

The trigger of 0001 compared ``OLD.status || '>' || NEW.status`` with a list of allowed
pairs: for every row a claim or a finish changed, SQLite built the string and looked it up
in a list it set up anew each time, which was about a fifth of what such an UPDATE cost
(``bench/ledger_overhead.py``; replayed on plain ``sqlite3``: 22.7 -> 19.9 us per document
for a claim and a finish). The same pairs are now a chain of equality tests, the most
frequent first, and the trigger still refuses every pair not listed. PostgreSQL's check is
unchanged.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07 06:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The allowed transitions as 0001 froze them (a migration keeps its own copy).
ALLOWED = (
    "pending>running",
    "running>done",
    "running>failed",
    "running>pending",
    "running>skipped",
    "running>cancelled",
    "pending>cancelled",
    "pending>skipped",
    "failed>pending",
    "done>pending",
    "skipped>pending",
)


def _allowed_as_comparisons() -> str:
    targets: dict[str, list[str]] = {}
    for pair in ALLOWED:
        old, new = pair.split(">")
        targets.setdefault(old, []).append(new)
    return " OR ".join(
        f"(OLD.status = '{old}' AND ({' OR '.join(f'NEW.status = {new!r}' for new in news)}))"
        for old, news in targets.items()
    )


_ALLOWED_AS_LIST = ", ".join(f"'{pair}'" for pair in ALLOWED)

_TRIGGER = """CREATE TRIGGER trg_documents_status_transition
        BEFORE UPDATE OF status ON documents FOR EACH ROW
        WHEN OLD.status <> NEW.status AND {forbidden}
        BEGIN SELECT RAISE(ABORT, 'forbidden document status transition'); END"""


def _replace_trigger(forbidden: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER trg_documents_status_transition")
    op.execute(_TRIGGER.format(forbidden=forbidden))


def upgrade() -> None:
    _replace_trigger(f"NOT ({_allowed_as_comparisons()})")


def downgrade() -> None:
    _replace_trigger(f"(OLD.status || '>' || NEW.status) NOT IN ({_ALLOWED_AS_LIST})")
