"""The ``event_log`` table as a typed SQLAlchemy 2.x declarative model.

Column types are true to each dialect: on PostgreSQL ``timestamptz`` and
``jsonb``; on SQLite fixed-width UTC text (``2026-03-01T12:00:00.123456+00:00``,
so text order is time order and index range scans work) and JSON text; on
MariaDB ``DATETIME(6)`` holding UTC and ``JSON`` (MariaDB's LONGTEXT with a
validity check), in tables whose text compares bytewise (``MYSQL_TABLE_OPTIONS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Index, Integer, MetaData, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "MYSQL_TABLE_OPTIONS",
    "TIMESTAMP_TEXT_WIDTH",
    "Base",
    "EventRecord",
    "EventSequence",
    "JSONText",
    "UTCDateTime",
    "format_utc",
]

# "YYYY-MM-DDTHH:MM:SS.ffffff+00:00"
TIMESTAMP_TEXT_WIDTH = 32

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# MariaDB table options: InnoDB, 4-byte UTF-8, and a binary collation without
# pad space, so equality, ordering and LIKE prefixes are exact and case
# sensitive, as on SQLite and PostgreSQL ("a" != "a ", "A" != "a"), and code
# point order is UTF-8 byte order.
MYSQL_TABLE_OPTIONS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}
_MYSQL = frozenset({"mysql", "mariadb"})


def format_utc(value: datetime) -> str:
    """The SQLite storage form of an aware datetime: fixed width, UTC, microseconds."""
    if value.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes: ``timestamptz`` on PostgreSQL, sortable text on SQLite,
    ``DATETIME(6)`` holding UTC on MariaDB (which has no zone-aware type)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(TIMESTAMP_TEXT_WIDTH))
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return format_utc(value)
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        if dialect.name in _MYSQL:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(parsed, datetime)
        if parsed.tzinfo is None:  # MariaDB's DATETIME: stored as UTC
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class JSONText(TypeDecorator[Any]):
    """JSON documents bound as already-encoded text: ``jsonb`` on PostgreSQL, text on
    SQLite, ``JSON`` (LONGTEXT checked with JSON_VALID) on MariaDB.

    The logger encodes each event's data exactly once (during validation, where
    it also measures its size), so binding skips SQLAlchemy's JSON serialiser:
    the text goes to the driver unchanged (asyncpg's jsonb codec takes text).
    Reading returns decoded Python values on both backends.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.JSON())
        return dialect.type_descriptor(Text())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name == "postgresql":
            return None  # SQLAlchemy's asyncpg jsonb codec already decoded it
        loads = json.loads

        def process(value: Any) -> Any:
            return None if value is None else loads(value)

        return process


class Base(DeclarativeBase):
    """Declarative base whose naming convention keeps constraint names stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EventRecord(Base):
    """One row of ``event_log`` (ADR 017's seven columns)."""

    __tablename__ = "event_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(255))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[Any] = mapped_column(JSONText(), nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    # Commit order (not part of an Event): see EventSequence. Nullable only so
    # rows written by other tools stay valid; the logger always sets it.
    seq: Mapped[int | None] = mapped_column(BigInteger(), nullable=True)

    # Every index ends in (timestamp, id), the order of every listing, so a
    # filtered listing or keyset page is an index range scan with no sort step.
    __table_args__ = (
        Index("ix_event_log_timestamp_id", "timestamp", "id"),
        Index("ix_event_log_task_id_timestamp_id", "task_id", "timestamp", "id"),
        Index("ix_event_log_agent_id_timestamp_id", "agent_id", "timestamp", "id"),
        Index("ix_event_log_event_type_timestamp_id", "event_type", "timestamp", "id"),
        Index("ix_event_log_seq", "seq", unique=True),
        MYSQL_TABLE_OPTIONS,
    )


class EventSequence(Base):
    """The last commit sequence number handed out: one row, ``id = 1``.

    Every write transaction first adds its row count to ``last_seq`` and
    numbers its rows from the result. The row lock that UPDATE takes is held
    to the commit, so on PostgreSQL and MariaDB a second writer can only number its rows
    after the first has committed (SQLite writers are serialised anyway):
    ``seq`` order is commit order, across loggers and processes. Timestamps
    and UUIDv7 ids are not: a transaction that began earlier can commit
    later. ``follow()`` reads in ``seq`` order, so it neither skips nor repeats
    an event that commits late. A counter in its own table never goes back,
    even when pruning deletes the newest rows.
    """

    __tablename__ = "event_log_sequence"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger())
