"""Ping a pooled connection before reuse only when it has been idle.

SQLAlchemy's ``pool_pre_ping`` pings at every checkout; with asyncpg that is three round
trips (BEGIN, an empty statement, ROLLBACK) before each transaction, a quarter of the trips
of a worker's finish-and-claim. A connection that answered a moment ago is alive for all
a ping could tell: the server going away within that moment fails the next statement
exactly as it would fail one sent just after a ping. So a connection back in the pool for
less than ``PING_AFTER_IDLE_SECONDS`` is handed out as it is; one idle longer (an API
server between requests, a worker waiting for work, any connection across a database
restart) is pinged first, and a dead one is replaced as the pre-ping would replace it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "ledger_returned_at"


def ping_when_idle(engine: AsyncEngine, *, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Install the idle-only ping on ``engine``'s pool (created without ``pool_pre_ping``)."""
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # A new connection has no mark (a record's info is cleared when it reconnects).
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                # As the pre-ping does: every pooled connection as old is stale too.
                raise exc.InvalidatePoolError() from error
            raise
