"""PostgreSQL: the server backend for many writers, through asyncpg or psycopg 3. A
write path of its own (one statement or a COPY per batch, see ``_sink``),
LISTEN/NOTIFY wake-ups for ``follow()``, jsonb filters, optional time partitions
and a GIN data index. Only the driver the engine's URL names is imported."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    DateTime,
    Delete,
    Dialect,
    delete,
    event,
    extract,
    func,
    literal,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, ExceptionContext
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator, TypeEngine

from ..._commit_order import CommitOrder
from ..._errors import as_storage_error, recognise_lost_connections
from ..._schema import EVENT_TABLE, WRITTEN_COLUMNS
from .._backend import Backend, BackendName, IndexOutcome, Listener, Partitions
from ._json import data_clauses
from ._snapshots import SnapshotOrder

if TYPE_CHECKING:
    from ..._data_filters import DataFilter
    from ..._database import Database
    from ..._filters import TypeSpec
    from ..._models import Row
    from ..._queries import BucketGrid
    from .._sink import Sink

__all__ = ["BACKEND", "NOTIFY_CHANNEL", "PostgreSQLBackend", "watch_lost_connections"]

_log = logging.getLogger("event_log")
_c = EVENT_TABLE.c
# The channel every commit is announced on (see _follow).
NOTIFY_CHANNEL = "event_log"
# SQLSTATE read_only_sql_transaction: what a hot standby answers LISTEN with.
_READ_ONLY_TRANSACTION = "25006"
# Imports take turns through this transaction-scoped lock (see seq_statements).
_IMPORT_LOCK_KEY = 0x6576_5F69_6D70_6F72  # "ev_impor"
# lock_not_available: the lock timeout expired.
_LOCK_NOT_AVAILABLE = "55P03"


def _lost_connection(exc: BaseException) -> bool:
    from ._sink import lost_connection

    return lost_connection(exc)


# Every failure message and retry rule asks the drivers' own test (see _errors).
recognise_lost_connections("asyncpg", _lost_connection)
recognise_lost_connections("psycopg", _lost_connection)


def _mark_lost_connection(context: ExceptionContext) -> None:
    """SQLAlchemy's dialects know only some of the ways a driver reports a dead
    connection (asyncpg's stuck protocol, "cannot switch to state N", is not one):
    mark the rest as disconnects too, so the connection is invalidated, the pool's
    pre-ping replaces it before a read, and the error says ``connection_invalidated``."""
    if not context.is_disconnect and _lost_connection(context.original_exception):
        context.is_disconnect = True


def watch_lost_connections(engine: AsyncEngine) -> None:
    """Install :func:`_mark_lost_connection` on ``engine`` (once)."""
    target = engine.sync_engine
    if not event.contains(target, "handle_error", _mark_lost_connection):
        event.listen(target, "handle_error", _mark_lost_connection)


class AwareTimestamp(TypeDecorator[datetime]):
    """``timestamptz``: aware datetimes in, aware UTC datetimes out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)


class PostgresPartitions(Partitions):
    """Range partitions by day or month (see ``_partitions``), kept ahead by the logger."""

    async def ensure(self, db: Database, *, ahead: int | None, lock_timeout_ms: int) -> list[str]:
        from ._partitions import ensure_partitions

        async with db.begin() as conn:
            return await conn.run_sync(
                lambda c: ensure_partitions(c, ahead=ahead, lock_timeout_ms=lock_timeout_ms)
            )

    async def drop_expired(self, db: Database, cutoff: datetime, *, lock_timeout_ms: int) -> int:
        """Detach the partitions older than ``cutoff`` (one short transaction), then count
        and drop them (another, holding no lock on ``event_log``); return their rows.

        When ``event_log`` stays locked by others past ``lock_timeout_ms``,
        nothing is detached this time (a warning is logged): prune's batches
        delete those rows instead.
        """
        from ._partitions import detach_expired, drop_detached

        try:
            async with db.begin() as conn:
                detached = await conn.run_sync(
                    lambda c: detach_expired(c, cutoff, lock_timeout_ms=lock_timeout_ms)
                )
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            _log.warning(
                "event_log: event_log stayed locked for %d ms; expired partitions are "
                "pruned by DELETE this time",
                lock_timeout_ms,
            )
            detached = []
        if detached is None:  # not partitioned
            return 0
        # Also drops partitions an interrupted prune detached but did not drop.
        async with db.begin() as conn:
            return int(await conn.run_sync(drop_detached))


class PostgreSQLBackend(Backend):
    """PostgreSQL through asyncpg or psycopg 3 (``postgresql+psycopg://``)."""

    name: ClassVar[BackendName] = "postgresql"
    extra = "postgresql"
    drivers: ClassVar[dict[str, str]] = {"asyncpg": "asyncpg", "psycopg": "psycopg"}
    partitions = PostgresPartitions()
    # Transaction ids and snapshots: writers share no counter (see _snapshots).
    commit_order: CommitOrder = SnapshotOrder()
    commit_column = "xid"
    holds_follow_connection = True

    def extra_for(self, driver: str) -> str | None:
        return "psycopg" if driver == "psycopg" else self.extra

    def create_engine(
        self, url: URL, *, read_only: bool = False, **engine_kwargs: Any
    ) -> AsyncEngine:
        engine = create_async_engine(url, pool_pre_ping=True, **engine_kwargs)
        watch_lost_connections(engine)
        if read_only:

            @event.listens_for(engine.sync_engine, "connect")
            def _read_only(dbapi_connection: Any, _record: Any) -> None:
                # Every transaction of the session is READ ONLY: the server refuses writes.
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                finally:
                    cursor.close()
                dbapi_connection.commit()

        return engine

    def timestamp_type(self) -> TypeEngine[datetime]:
        return AwareTimestamp()

    def json_type(self) -> TypeEngine[Any]:
        return JSONB()

    def json_loader(self) -> Callable[[Any], Any] | None:
        # Both drivers decode jsonb themselves: asyncpg through the codec
        # SQLAlchemy's dialect sets, psycopg through its own jsonb loader.
        return None

    def seq_statements(self, count: int) -> tuple[str, ...]:
        # No numbers here (see _snapshots). Only an import runs this: imports take
        # turns with each other, so the ids one reads as new stay new until it
        # commits; writes of new events never take this lock.
        return (f"SELECT 0 FROM pg_advisory_xact_lock({_IMPORT_LOCK_KEY})",)

    def bind_rows(self, rows: Sequence[Row], last_seq: int) -> list[tuple[Any, ...]]:
        return [(*r, None) for r in rows]

    def insert_sql(self, dialect: Dialect) -> str:
        if dialect.driver != "psycopg":
            return super().insert_sql(dialect)
        # SQLAlchemy's psycopg dialect names its placeholders (%(id)s), which
        # take mappings; bind_rows' tuples take positional ones.
        placeholders = ", ".join(["%s"] * len(WRITTEN_COLUMNS))
        return (
            f"INSERT INTO {EVENT_TABLE.name} ({', '.join(WRITTEN_COLUMNS)}) VALUES ({placeholders})"
        )

    def make_sink(self, db: Database) -> Sink:
        from ._sink import make_sink

        watch_lost_connections(db.engine)  # an engine the caller made, too
        return make_sink(db)

    def lost_connection(self, exc: BaseException) -> bool:
        return _lost_connection(exc)

    def data_clauses(
        self, data: DataFilter, column: ColumnElement[Any]
    ) -> list[ColumnElement[bool]]:
        return data_clauses(data, column)

    def bucket_index(self, grid: BucketGrid) -> ColumnElement[Any]:
        step = grid.every // timedelta(microseconds=1)
        # timestamptz - timestamptz is an interval; its epoch is exact (numeric).
        seconds = extract("epoch", _c.timestamp - literal(grid.start, _c.timestamp.type))
        # 64-bit binds: an hour is more microseconds than an int32 holds.
        return func.floor(seconds * literal(1_000_000, BigInteger) / literal(step, BigInteger))

    def prune_batch_statement(
        self,
        cutoff: datetime,
        batch_size: int,
        *,
        only: TypeSpec | None = None,
        unless: Sequence[TypeSpec] = (),
    ) -> Delete:
        # The time bound lets a partitioned table look for the ids only in the
        # partitions before the cutoff (a no-op on a plain one).
        oldest = self._oldest(cutoff, batch_size, only, unless)
        return delete(EVENT_TABLE).where(_c.timestamp < cutoff, _c.id.in_(oldest.scalar_subquery()))

    async def listen(self, db: Database, wake: Callable[..., None]) -> Listener | None:
        try:
            if db.engine.dialect.driver == "psycopg":
                from ._psycopg import listen as psycopg_listen

                return await psycopg_listen(db, NOTIFY_CHANNEL, wake)
            from ._listen import listen

            return await listen(db, NOTIFY_CHANNEL, wake)
        except Exception as exc:
            # A hot standby (a read replica) refuses LISTEN while it replays the
            # primary's log, and would never be notified anyway: followers poll there.
            if getattr(exc, "sqlstate", None) == _READ_ONLY_TRANSACTION:
                _log.info("event_log: the server is a read-only standby; followers poll it")
                return None
            if isinstance(exc, SQLAlchemyError | OSError):
                raise
            # The driver's own error (LISTEN runs on the driver's connection directly).
            raise as_storage_error("listening for commits", exc) from exc

    async def create_data_index(self, engine: AsyncEngine) -> IndexOutcome:
        from ._data_index import create_gin_index

        return await create_gin_index(engine)

    def is_optional_index(self, name: str | None) -> bool:
        from ._data_index import is_optional_index

        return is_optional_index(name)


BACKEND = PostgreSQLBackend()
