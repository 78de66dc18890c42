"""Column types shared by the tables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Defined beside the SQLite reads, which must not import SQLAlchemy; still exported here.
from ledger.db.sqlite_reads import sqlite_timestamp as sqlite_timestamp

# 64-bit ids on PostgreSQL; on SQLite an INTEGER PRIMARY KEY is the rowid (fast, 64-bit anyway).
BigIntId = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONDoc = JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


_sqlite_text = sqlite_timestamp


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite has no timestamp type: values are stored as UTC text in one fixed-width format,
    so comparisons in SQL stay correct. Naive datetimes are refused rather than guessed at.
    The SQLite codec is hand-rolled because the ledger binds the same few timestamps to
    thousands of rows per transaction: it remembers the last value it formatted.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return self._bind_aware
        last: list[Any] = [None, None]

        def to_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value is last[0]:
                return last[1]  # type: ignore[no-any-return]
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            text = _sqlite_text(value)
            last[0], last[1] = value, text
            return text

        return to_text

    @staticmethod
    def _bind_aware(value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        def to_datetime(value: Any) -> datetime | None:
            if value is None:
                return None
            moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

        return to_datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        # Used only for literal rendering (offline SQL); the processors above do the work.
        if value is None:
            return None
        return _sqlite_text(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return value if isinstance(value, datetime) else None
