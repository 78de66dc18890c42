"""Telling "the database connection went away" apart from other database errors.

A restart, a failover or a network cut ends every connection at once; the server then
refuses new ones for a while (or answers that it is starting up). Such an error says
nothing about the statement that met it: the same work succeeds once the database is
back. The pool has already dropped the dead connection (SQLAlchemy invalidates it, and
every pooled one as old), so trying again later is all there is to do.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from ledger.db.write_failures import driver_reason

# PostgreSQL: connection exceptions (class 08), and the server shutting down or starting up.
_POSTGRES_CLASS = "08"
_POSTGRES_STATES = {"57P01", "57P02", "57P03"}


def is_lost_connection(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached or dropped the connection."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    for error in (exc, getattr(exc, "orig", None)):
        if isinstance(error, ConnectionError):  # refused, reset: the server is not there
            return True
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and (
            state.startswith(_POSTGRES_CLASS) or state in _POSTGRES_STATES
        ):
            return True
    return False


def log_failed_round(logger: logging.Logger, what: str, exc: BaseException, again: float) -> None:
    """Log a background round (maintenance, sinks) that failed and is tried again later:
    one line when the database is unreachable, the traceback for anything else."""
    if is_lost_connection(exc):
        logger.error(
            "%s failed: the database is unreachable (%s); trying again in %.0f s",
            what,
            driver_reason(exc),
            again,
        )
    else:
        logger.error("%s failed; trying again in %.0f s", what, again, exc_info=exc)
