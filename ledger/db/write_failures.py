"""Telling "the database cannot be written" apart from other database errors, and how long
to keep trying.

A full disk, a read-only file or an I/O error will not go away because the same statement
is sent again a moment later; retrying it for ever (every few seconds, for as long as the
disk stays full) only hides the problem from the operator. These errors are retried a
bounded number of times within a bounded total wait, then become
:class:`~ledger.errors.DatabaseWriteFailed`, which the command line reports in one line
with exit code 3.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.errors import DatabaseWriteFailed
from ledger.settings import Settings

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CODES = {_SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL}
# PostgreSQL: disk_full, io_error.
_POSTGRES_STATES = {"53100", "58030"}
_SQLITE_MESSAGES = ("database or disk is full", "disk i/o error", "readonly database")
FIRST_DELAY = 0.25


def _driver_error(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


def is_write_failure(exc: BaseException) -> bool:
    """True when ``exc`` says the database's storage refused a write."""
    if isinstance(exc, DatabaseWriteFailed):
        return True
    orig = _driver_error(exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _SQLITE_CODES:
        return True
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state in _POSTGRES_STATES:
        return True
    text = str(orig).lower()
    return any(message in text for message in _SQLITE_MESSAGES)


def write_failed(exc: BaseException) -> DatabaseWriteFailed:
    """The error to stop with, naming the database's own reason in one line."""
    if isinstance(exc, DatabaseWriteFailed):
        return exc
    return DatabaseWriteFailed(
        f"cannot write to the database: {driver_reason(exc)} (is its disk full?)"
    )


def driver_reason(exc: BaseException) -> str:
    """The driver's own words for ``exc``, on one line (no statement, no parameters)."""
    lines = str(_driver_error(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@dataclass
class WriteRetry:
    """The delays between attempts at a refused write: doubling, at most ``attempts``
    attempts and ``max_wait`` seconds of waiting in all."""

    attempts: int
    max_wait: float
    failures: int = 0
    waited: float = field(default=0.0)

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteRetry:
        return cls(settings.write_failure_attempts, settings.write_failure_max_wait_seconds)

    def next_delay(self) -> float | None:
        """Count one failure; the seconds to wait before the next attempt, or None to give up."""
        self.failures += 1
        left = self.max_wait - self.waited
        if self.failures >= self.attempts or left <= 0:
            return None
        delay: float = min(FIRST_DELAY * 2.0 ** (self.failures - 1), left)
        self.waited += delay
        return delay

    def reset(self) -> None:
        """A write went through: the next failure starts a fresh count."""
        self.failures = 0
        self.waited = 0.0
