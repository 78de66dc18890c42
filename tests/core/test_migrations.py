"""Migrations are the only way the schema is made: they must match the models on both
backends and run down and up again cleanly."""

from __future__ import annotations

import json

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from ledger.db import migrate
from ledger.db.models import HEAD_REVISION
from tests.conftest import _postgres_database, postgres_available, sql


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with nothing in it yet."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('m') / 'ledger.db'}"
    error = postgres_available()
    if error:
        pytest.skip(f"PostgreSQL server not reachable: {error}")
    url = _postgres_database()  # migrated clone: take it back to empty first
    migrate.downgrade(url, "base")
    return url


def _sync(url: str) -> str:
    parsed = make_url(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg2"
    return str(parsed.set(drivername=driver))


def _tables(url: str) -> set[str]:
    from sqlalchemy import create_engine

    engine = create_engine(_sync(url))
    try:
        names = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    return names - {"alembic_version"}


def test_upgrade_matches_models_then_down_and_up_again(empty_url: str) -> None:
    config = migrate.alembic_config(empty_url)
    migrate.upgrade(empty_url)
    command.check(config)  # raises if autogenerate would emit anything
    assert {"batches", "documents", "attempts", "workers", "events"} <= _tables(empty_url)
    views = sql(_sync(empty_url), "SELECT count(*) FROM batch_progress")
    assert views == [(0,)]
    migrate.downgrade(empty_url, "base")
    assert _tables(empty_url) == set()
    migrate.upgrade(empty_url)
    command.check(config)


def test_every_revision_steps_down_and_up(empty_url: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(empty_url))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        migrate.upgrade(empty_url, revision)
    for revision in reversed(revisions[:-1]):
        migrate.downgrade(empty_url, revision)
        migrate.upgrade(empty_url, "+1")
    assert migrate.head_revision() == revisions[-1]


def test_the_revision_a_ledger_checks_for_is_alembics_head() -> None:
    # Opening a ledger compares the database with HEAD_REVISION, not with the migration
    # scripts (reading them loads Alembic): a new migration must move it.
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    assert script.get_current_head() == HEAD_REVISION
    assert migrate.head_revision() == HEAD_REVISION


def test_0007_gives_existing_keys_the_tenant_role(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0006")
    sql(
        _sync(empty_url),
        "INSERT INTO api_keys (id, tenant, prefix, key_sha256, created_at) "
        "VALUES ('k1', 'acme', 'ldg_k1', :digest, CURRENT_TIMESTAMP)",
        digest="0" * 64,
    )
    migrate.upgrade(empty_url, "0007")
    assert sql(_sync(empty_url), "SELECT id, role FROM api_keys") == [("k1", "tenant")]
    with pytest.raises(IntegrityError):
        sql(_sync(empty_url), "UPDATE api_keys SET role = 'root'")
    migrate.downgrade(empty_url, "0006")
    assert sql(_sync(empty_url), "SELECT id FROM api_keys") == [("k1",)]
    migrate.upgrade(empty_url)


def test_0008_gives_existing_workers_no_processors_and_downgrades(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0007")
    sql(
        _sync(empty_url),
        "INSERT INTO workers (id, hostname, pid, concurrency, started_at, heartbeat_at) "
        "VALUES ('h:1:ab', 'h', 1, 4, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    migrate.upgrade(empty_url, "0008")
    ((processors, finished),) = sql(
        _sync(empty_url), "SELECT processors, documents_finished FROM workers"
    )
    assert (processors if isinstance(processors, list) else json.loads(processors)) == []
    assert finished == 0
    with pytest.raises(IntegrityError):
        sql(_sync(empty_url), "UPDATE workers SET documents_finished = -1")
    migrate.downgrade(empty_url, "0007")
    assert sql(_sync(empty_url), "SELECT id, concurrency FROM workers") == [("h:1:ab", 4)]
    migrate.upgrade(empty_url)


def _attempt(url: str, lease: str, outcome: str) -> None:
    sql(
        url,
        "INSERT INTO attempts (document_id, batch_id, attempt, lease_token, started_at,"
        " finished_at, duration_seconds, outcome, error_code, systemic)"
        " VALUES (1, 'b', :n, :lease, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, :outcome,"
        " 'embed_http_429', false)",
        n=int(lease[1:]),
        lease=lease,
        outcome=outcome,
    )


def test_0015_lets_attempts_end_throttled_and_downgrades_them_to_retry(empty_url: str) -> None:
    url = _sync(empty_url)
    migrate.upgrade(empty_url, "0014")
    sql(
        url,
        "INSERT INTO batches (id, processor, options, max_attempts, created_at, updated_at)"
        " VALUES ('b', 'noop', '{}', 3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    sql(
        url,
        "INSERT INTO documents (id, batch_id, source, next_attempt_at, created_at, updated_at)"
        " VALUES (1, 'b', 's', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    _attempt(url, "t1", "retry")
    with pytest.raises(IntegrityError):
        _attempt(url, "t2", "throttled")
    migrate.upgrade(empty_url, "0015")
    _attempt(url, "t2", "throttled")
    with pytest.raises(IntegrityError):
        _attempt(url, "t3", "slowed")
    # A throttle still needs its error code, like every ending but done/skipped/released.
    with pytest.raises(IntegrityError):
        sql(url, "UPDATE attempts SET error_code = NULL WHERE lease_token = 't2'")
    migrate.downgrade(empty_url, "0014")
    rows = sql(url, "SELECT lease_token, outcome FROM attempts ORDER BY id")
    assert rows == [("t1", "retry"), ("t2", "retry")]
    with pytest.raises(IntegrityError):
        _attempt(url, "t3", "throttled")
    migrate.upgrade(empty_url)
    assert sql(url, "SELECT count(*) FROM attempts") == [(2,)]


def test_0019_counts_sink_throttles_from_zero_and_drops_the_count_on_downgrade(
    empty_url: str,
) -> None:
    url = _sync(empty_url)
    migrate.upgrade(empty_url, "0018")
    sql(
        url,
        "INSERT INTO sink_rows (sink, source_key, batch_id, status, next_attempt_at,"
        " created_at, updated_at) VALUES ('s', 'k', 'b', 'pending', CURRENT_TIMESTAMP,"
        " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    migrate.upgrade(empty_url, "0019")
    assert sql(url, "SELECT throttles FROM sink_rows") == [(0,)]
    sql(url, "UPDATE sink_rows SET throttles = 3")
    with pytest.raises(IntegrityError):
        sql(url, "UPDATE sink_rows SET throttles = -1")
    migrate.downgrade(empty_url, "0018")
    assert sql(url, "SELECT sink, status FROM sink_rows") == [("s", "pending")]
    migrate.upgrade(empty_url)
    assert sql(url, "SELECT throttles FROM sink_rows") == [(0,)]


def test_0022_keeps_one_attempt_row_per_lease_of_a_document_and_downgrades(
    empty_url: str,
) -> None:
    url = _sync(empty_url)
    migrate.upgrade(empty_url, "0021")
    sql(
        url,
        "INSERT INTO batches (id, processor, options, max_attempts, created_at, updated_at)"
        " VALUES ('b', 'noop', '{}', 3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    for doc in (1, 2):
        sql(
            url,
            "INSERT INTO documents (id, batch_id, source, next_attempt_at, created_at,"
            " updated_at) VALUES (:doc, 'b', :source, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP,"
            " CURRENT_TIMESTAMP)",
            doc=doc,
            source=f"s{doc}",
        )
    _attempt(url, "t1", "retry")
    migrate.upgrade(empty_url, "0022")
    with pytest.raises(IntegrityError):  # the same lease of the same document, again
        _attempt(url, "t1", "retry")
    _attempt(url, "t2", "retry")
    migrate.downgrade(empty_url, "0021")
    assert sql(url, "SELECT lease_token FROM attempts ORDER BY id") == [("t1",), ("t2",)]
    with pytest.raises(IntegrityError):  # before 0022 a token is unique on its own
        sql(
            url,
            "INSERT INTO attempts (document_id, batch_id, attempt, lease_token, started_at,"
            " finished_at, duration_seconds, outcome, systemic) VALUES (2, 'b', 1, 't1',"
            " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0, 'done', false)",
        )
    migrate.upgrade(empty_url)
    assert sql(url, "SELECT count(*) FROM attempts") == [(2,)]
