"""Which errors mean "the database went away" (claims wait for it) and which do not (they
are the statement's own, and the worker stops on them as before)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import IntegrityError, OperationalError

from ledger.db.lost_connection import is_lost_connection
from ledger.db.write_failures import driver_reason


class _PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate}\nmore detail")
        self.sqlstate = sqlstate


def test_a_refused_or_dropped_connection_is_lost() -> None:
    assert is_lost_connection(ConnectionRefusedError(111, "Connect call failed"))
    assert is_lost_connection(ConnectionResetError())
    dropped = OperationalError("SELECT 1", {}, Exception("closed"), connection_invalidated=True)
    assert is_lost_connection(dropped)
    for state in ("08006", "57P01", "57P03"):  # connection failure, shutdown, starting up
        assert is_lost_connection(OperationalError("SELECT 1", {}, _PostgresError(state)))


def test_errors_of_the_statement_or_the_disk_are_not() -> None:
    assert not is_lost_connection(ValueError("bad"))
    assert not is_lost_connection(
        IntegrityError("INSERT", {}, _PostgresError("23505"))  # unique violation
    )
    disk = OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))
    assert not is_lost_connection(disk)


def test_the_reason_is_the_drivers_first_line() -> None:
    error = OperationalError("SELECT 1", {"a": 1}, _PostgresError("57P01"))
    assert driver_reason(error) == "server said 57P01"
