"""Engine creation: one place that knows how each backend's connections are set up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import asbool

from ledger.database_url import plain_sqlite_file
from ledger.db import sqlite_driver
from ledger.db.idle_ping import ping_when_idle
from ledger.db.wal_checkpoint import Checkpointer
from ledger.extras import require
from ledger.settings import Settings

registry.register(f"sqlite.{sqlite_driver.DRIVER}", "ledger.db.sqlite_driver", "dialect")

# Execution option that makes a transaction on SQLite take the write lock when it begins
# (BEGIN IMMEDIATE). Writers then queue on busy_timeout instead of failing half-way through
# with SQLITE_BUSY when they try to upgrade a read lock.
WRITE = "ledger_write"
# Execution option of a brief transaction: statements bounded by a claim's size, run on the
# event loop's thread on SQLite (see ``sqlite_driver``); other databases ignore it.
BRIEF = "ledger_brief"


def create_engine(settings: Settings, *, migrating: bool = False, **kwargs: Any) -> AsyncEngine:
    """Create the engine for ``settings.url`` with the ledger's per-connection setup.

    ``migrating`` turns SQLite's foreign keys off for the connection: Alembic's batch mode
    rebuilds tables, and with foreign keys on, dropping the old copy would cascade-delete
    rows. The migration runner checks the keys itself afterwards.
    """
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings, foreign_keys=not migrating, **kwargs)
    if url.get_driver_name() == "asyncpg":
        require("postgres", "asyncpg", what="PostgreSQL")
        kwargs = _with_application_name(kwargs)
    engine = create_async_engine(url, **kwargs)
    ping_when_idle(engine)
    return engine


def application_name(pid: int | None = None) -> str:
    """What a ledger process calls its PostgreSQL connections (pg_stat_activity shows it).

    The client pid in the name tells an operator which process holds a lock or a long
    transaction, and lets a test wait until a killed process's last statements are done.
    """
    return f"ledger pid={os.getpid() if pid is None else pid}"


def _with_application_name(kwargs: dict[str, Any]) -> dict[str, Any]:
    connect_args = dict(kwargs.pop("connect_args", {}))
    server_settings = dict(connect_args.get("server_settings", {}))
    server_settings.setdefault("application_name", application_name())
    connect_args["server_settings"] = server_settings
    return {**kwargs, "connect_args": connect_args}


def _sqlite_engine(settings: Settings, *, foreign_keys: bool, **kwargs: Any) -> AsyncEngine:
    url = make_url(settings.url)
    # A file's folder is made on first use; a ``file:`` URI (``?uri=true``) is SQLite's to
    # read (it may name memory, or a file to open read-only): taken as a path, it made a
    # folder called ``file:`` in the working directory.
    is_uri = asbool(url.query.get("uri", False))
    if url.database and url.database != ":memory:" and not is_uri:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # No rollback when a connection goes back to the pool: every transaction here ends in
    # COMMIT or ROLLBACK before that (the driver is in autocommit mode, see _on_connect), so
    # the reset was one more trip to the driver's thread per transaction, for nothing.
    kwargs.setdefault("pool_reset_on_return", None)
    # aiosqlite, with one trip to its thread per statement (see sqlite_driver).
    engine = create_async_engine(url.set(drivername=f"sqlite+{sqlite_driver.DRIVER}"), **kwargs)
    synchronous = settings.sqlite_synchronous
    busy_timeout = settings.busy_timeout_ms
    # With synchronous=NORMAL a commit writes the log without an fsync: once checkpoints
    # run on a thread of their own, a brief transaction's COMMIT is a few page writes and
    # runs on the event loop's thread (see wal_checkpoint). FULL syncs the log at every
    # commit, which stays off the loop, and keeps SQLite's own checkpoints.
    # Only for a plain file: in memory there is no log, and a URI (``file:...?mode=ro``)
    # or a query may open the file in ways a second connection must not guess at.
    plain_file = plain_sqlite_file(settings.url)
    checkpointer = (
        Checkpointer(plain_file) if synchronous == "NORMAL" and plain_file is not None else None
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        if isinstance(dbapi_connection, sqlite_driver.OneTripConnection):
            dbapi_connection.busy_timeout_ms = int(busy_timeout)
            dbapi_connection.commit_brief_inline = checkpointer is not None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
            if checkpointer is not None:
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
        finally:
            cursor.close()
        if checkpointer is not None:
            checkpointer.start()

    if checkpointer is not None:

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _on_dispose(_engine: Any) -> None:
            checkpointer.stop()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        begin = "BEGIN IMMEDIATE" if options.get(WRITE, False) else "BEGIN"
        driver = conn.connection.dbapi_connection
        if isinstance(driver, sqlite_driver.OneTripConnection):
            # Sent with the transaction's first statement: one trip to the driver's thread
            # fewer per transaction (the lock is still taken before that statement runs).
            driver.begin_with_next_statement(begin, brief=options.get(BRIEF, False))
        else:
            conn.exec_driver_sql(begin)

    return engine
