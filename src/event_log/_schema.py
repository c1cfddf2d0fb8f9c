"""The ``event_log`` table as a typed SQLAlchemy 2.x declarative model.

Column types are true to each dialect: on PostgreSQL ``timestamptz`` and
``jsonb``; on SQLite fixed-width UTC text (``2026-03-01T12:00:00.123456+00:00``,
so text order is time order and index range scans work) and JSON text; on
MariaDB ``DATETIME(6)`` holding UTC and ``JSON`` (MariaDB's LONGTEXT with a
validity check), in tables whose text compares bytewise (``MYSQL_TABLE_OPTIONS``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import SchemaItem
from sqlalchemy.sql.compiler import DDLCompiler
from sqlalchemy.sql.ddl import BaseDDLElement
from sqlalchemy.types import TypeDecorator, TypeEngine

if TYPE_CHECKING:
    from .backends import Backend


__all__ = [
    "EVENT_TABLE",
    "MYSQL_TABLE_OPTIONS",
    "SEQUENCE_TABLE",
    "WRITTEN_COLUMNS",
    "Base",
    "EventRecord",
    "EventSequence",
    "JSONText",
    "UTCDateTime",
    "has_sequence_table",
    "indexes_on",
]

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
# point order is UTF-8 byte order. (SQLAlchemy's table keywords carry the
# dialect in their names; other dialects ignore them.)
MYSQL_TABLE_OPTIONS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_nopad_bin",
}


def _backend(dialect: Dialect) -> Backend:
    # Imported when a type first meets a dialect: the backends build on this module.
    from .backends import backend_for_dialect

    return backend_for_dialect(dialect)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes, stored as the backend says (``Backend.timestamp_type``):
    ``timestamptz`` on PostgreSQL, sortable text on SQLite, ``DATETIME(6)`` holding
    UTC on MariaDB (which has no zone-aware type)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _backend(dialect).timestamp_type()


class JSONText(TypeDecorator[Any]):
    """JSON documents bound as already-encoded text (``Backend.json_type``).

    The logger encodes each event's data exactly once (during validation, where
    it also measures its size), so binding skips SQLAlchemy's JSON serialiser:
    the text goes to the driver unchanged. Reading returns decoded Python values
    on every backend.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(_backend(dialect).json_type())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        return None

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        return _backend(dialect).json_loader()


# An index's info key: the commit order it serves, by the column that keeps it
# ("seq": the counter's numbers; "xid": transaction ids). A database has only the
# index of its own (``Backend.commit_column``).
_SERVES = "serves_commit_order"


def _on_its_dialects(
    ddl: BaseDDLElement,
    target: SchemaItem | str,
    bind: Connection | None,
    tables: list[Table] | None = None,
    state: Any | None = None,
    *,
    dialect: Dialect,
    compiler: DDLCompiler | None = None,
    checkfirst: bool,
) -> bool:
    """``create_all``'s test: an index that serves one commit order is made only where
    the database keeps that one."""
    return not isinstance(target, Index) or _exists_on(target, dialect)


class Base(DeclarativeBase):
    """Declarative base whose naming convention keeps constraint names stable for Alembic."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EventRecord(Base):
    """One row of ``event_log`` (the original design's seven columns, and more)."""

    __tablename__ = "event_log"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(255))
    task_id: Mapped[str | None] = mapped_column(String(255))
    agent_id: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[Any] = mapped_column(JSONText(), nullable=True)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    # Commit order (not part of an Event). SQLite and MariaDB: see EventSequence;
    # nullable so rows written by other tools stay valid. PostgreSQL numbers no
    # rows (seq stays NULL there): a row's place in commit order is its writing
    # transaction's id, which the server fills in (see backends.postgresql._snapshots).
    seq: Mapped[int | None] = mapped_column(BigInteger(), nullable=True)
    xid: Mapped[int | None] = mapped_column(BigInteger(), nullable=True)

    # Every index ends in (timestamp, id), the order of every listing, so a
    # filtered listing or keyset page is an index range scan with no sort step.
    __table_args__ = (
        Index("ix_event_log_timestamp_id", "timestamp", "id"),
        Index("ix_event_log_task_id_timestamp_id", "task_id", "timestamp", "id"),
        Index("ix_event_log_agent_id_timestamp_id", "agent_id", "timestamp", "id"),
        Index("ix_event_log_event_type_timestamp_id", "event_type", "timestamp", "id"),
        Index("ix_event_log_seq", "seq", unique=True, info={_SERVES: "seq"}).ddl_if(
            callable_=_on_its_dialects
        ),
        Index("ix_event_log_xid_id", "xid", "id", info={_SERVES: "xid"}).ddl_if(
            callable_=_on_its_dialects
        ),
        MYSQL_TABLE_OPTIONS,
    )


class EventSequence(Base):
    """The last commit sequence number handed out: one row, ``id = 1`` (SQLite, MariaDB).

    Every write transaction first adds its row count to ``last_seq`` and
    numbers its rows from the result. The row lock that UPDATE takes is held
    to the commit, so on PostgreSQL and MariaDB a second writer can only number its rows
    after the first has committed (SQLite writers are serialised anyway):
    ``seq`` order is commit order, across loggers and processes. Timestamps
    and UUIDv7 ids are not: a transaction that began earlier can commit
    later. ``follow()`` reads in ``seq`` order, so it neither skips nor repeats
    an event that commits late. A counter in its own table never goes back,
    even when pruning deletes the newest rows.

    PostgreSQL has no such table: its writers would all queue for that one
    row lock, and it reads commit order from transaction ids instead.
    """

    __tablename__ = "event_log_sequence"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger())


EVENT_TABLE = cast(Table, EventRecord.__table__)
SEQUENCE_TABLE = cast(Table, EventSequence.__table__)
# What a writer inserts: every column but xid, which only PostgreSQL fills, itself.
WRITTEN_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENT_TABLE.columns if c.name != "xid")


def indexes_on(dialect: Dialect) -> list[Index]:
    """The model's indexes that exist on ``dialect``'s databases."""
    return [index for index in EVENT_TABLE.indexes if _exists_on(index, dialect)]


def has_sequence_table(dialect: Dialect) -> bool:
    """Whether ``dialect``'s databases number rows from ``event_log_sequence``."""
    return _backend(dialect).commit_column == "seq"


def _exists_on(index: Index, dialect: Dialect) -> bool:
    serves = index.info.get(_SERVES)
    return serves is None or serves == _backend(dialect).commit_column
