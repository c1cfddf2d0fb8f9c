"""What a backend provides: the one contract every database behind event-log fulfils.

The rest of the package asks its :class:`Backend` whenever something depends
on the database: how to connect, how commit order is kept and read, where
the writer's batches go, how JSON data filters, type prefixes, histograms and
prune batches are written in SQL, how ``follow()`` wakes up, and whether
partitions and the GIN data index exist. Nothing outside ``backends`` names a
dialect. Adding a database means one module here, one entry in the registry
(``backends/__init__.py``) and one test fixture parameter.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from sqlalchemy import ColumnElement, Delete, delete, func, insert, not_, select
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from .._commit_order import CommitOrder, SequenceOrder
from .._schema import EVENT_TABLE, WRITTEN_COLUMNS

if TYPE_CHECKING:
    from .._data_filters import DataFilter
    from .._database import Database
    from .._filters import EventFilter, TypeSpec
    from .._models import Row
    from .._queries import AnySelect, BucketGrid, HistogramGroup
    from ._sink import Sink

__all__ = [
    "Backend",
    "BackendName",
    "IndexOutcome",
    "Listener",
    "Partitions",
]

BackendName = Literal["sqlite", "postgresql", "mariadb"]
IndexOutcome = Literal["created", "exists", "unsupported"]
_c = EVENT_TABLE.c


def _loads(value: Any) -> Any:
    return None if value is None else json.loads(value)


class Listener(ABC):
    """A connection that wakes followers when any process commits (see ``_follow``)."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening and release the connection."""


class Partitions(ABC):
    """Time partitions of ``event_log``, where the backend has them."""

    @abstractmethod
    async def ensure(self, db: Database, *, ahead: int | None, lock_timeout_ms: int) -> list[str]:
        """Create the current period's partition and ``ahead`` more; return the new ones
        (``[]`` when the table is not partitioned)."""

    @abstractmethod
    async def drop_expired(self, db: Database, cutoff: datetime, *, lock_timeout_ms: int) -> int:
        """Drop every partition wholly older than ``cutoff``; return the rows they held."""


class Backend(ABC):
    """One database engine's way of doing what event-log needs; stateless, one per name."""

    name: ClassVar[BackendName]
    # The optional dependency set that installs this backend's drivers.
    extra: ClassVar[str | None] = None
    # SQLAlchemy async driver name -> the module it needs; the first is the default.
    drivers: ClassVar[dict[str, str]]
    # Alembic's batch mode, for databases whose ALTER TABLE cannot do much.
    render_as_batch: ClassVar[bool] = False
    partitions: Partitions | None = None
    # How follow() reads rows in commit order: by the counter row's numbers here,
    # kept in this column (the schema has the index of this one only).
    commit_order: CommitOrder = SequenceOrder()
    commit_column: ClassVar[str] = "seq"
    # Whether a logger's followers share a held connection for their reads
    # (``_tail_reads``) instead of taking one from the pool for each.
    holds_follow_connection: ClassVar[bool] = False

    # -- connection set-up ------------------------------------------------------------------

    def extra_for(self, driver: str) -> str | None:
        """The optional dependency set that installs ``driver`` (one of ``drivers``)."""
        return self.extra

    @abstractmethod
    def create_engine(
        self, url: URL, *, read_only: bool = False, **engine_kwargs: Any
    ) -> AsyncEngine:
        """An engine for ``url`` tuned for an append-heavy event log.

        With ``read_only`` the database itself refuses writes on every connection
        (and a file database is opened, never created): a reader cannot change it.
        """

    def prepare_path(self, url: URL) -> None:  # noqa: B027 - most backends need nothing
        """Make what a database at ``url`` needs before its first connection (a folder)."""

    def is_memory(self, url: URL) -> bool:
        """Whether ``url`` names a database that lives only as long as its connection."""
        return False

    def file_path(self, url: URL) -> str | None:
        """The file holding the database at ``url``, for backends that keep one."""
        return None

    # -- column types -----------------------------------------------------------------------

    @abstractmethod
    def timestamp_type(self) -> TypeEngine[datetime]:
        """How an aware UTC timestamp is stored (and read back aware, in UTC)."""

    @abstractmethod
    def json_type(self) -> TypeEngine[Any]:
        """The column type of ``data``; bound as already-encoded JSON text."""

    def json_loader(self) -> Callable[[Any], Any] | None:
        """Decodes a stored ``data`` value; None when the driver decodes it already."""
        return _loads

    # -- writing ----------------------------------------------------------------------------

    @abstractmethod
    def seq_statements(self, count: int) -> tuple[str, ...]:
        """SQL reserving ``count`` sequence numbers in the write transaction.

        Run in order; every one but the last must change exactly the counter
        row, and the last returns the last number reserved. The counter row's
        lock lasts until the commit, so numbers are handed out in commit order.
        """

    def bind_rows(self, rows: Sequence[Row], last_seq: int) -> list[tuple[Any, ...]]:
        """Rows numbered up to ``last_seq``, their timestamps in this driver's bind form."""
        first = last_seq - len(rows) + 1
        return [(*r, seq) for seq, r in enumerate(rows, first)]

    def insert_sql(self, dialect: Dialect) -> str:
        """The INSERT of one ``event_log`` row, run with :meth:`bind_rows`' tuples."""
        return str(insert(EVENT_TABLE).compile(dialect=dialect, column_keys=WRITTEN_COLUMNS))

    def make_sink(self, db: Database) -> Sink:
        """The fastest way to write batches into ``db``."""
        from ._sink import EngineSink

        return EngineSink(db)

    def lost_connection(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection itself was lost (not the statement)."""
        return isinstance(exc, OSError | ConnectionError | TimeoutError)

    # -- reading ----------------------------------------------------------------------------

    def type_column(self, *, walk_time_index: bool) -> ColumnElement[str]:
        """The ``event_type`` column as a type filter or grouping should name it.

        ``walk_time_index``: the statement is better served by walking the
        ``(timestamp, id)`` index than by the ``event_type`` one (it sorts by
        time and stops after a page, or reads one time window).
        """
        return _c.event_type

    def prefix_clause(self, column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
        """``column`` starts with ``prefix`` (a ``task.`` of ``task.*``)."""
        # Server collations need not be bytewise; LIKE with escaping is exact everywhere.
        return column.startswith(prefix, autoescape=True)

    @abstractmethod
    def data_clauses(
        self, data: DataFilter, column: ColumnElement[Any]
    ) -> list[ColumnElement[bool]]:
        """WHERE clauses for ``data_contains`` and ``data_where`` on the ``data`` column."""

    def histogram_statements(
        self, flt: EventFilter, grid: BucketGrid, by: HistogramGroup | None, *, pooled: bool
    ) -> list[AnySelect]:
        """(bucket index, [group value,] count) rows; empty buckets may be absent.

        ``pooled``: each statement may run on a connection of its own, at once.
        By default one statement groups the rows by :meth:`bucket_index`.
        """
        from .._queries import filter_clauses

        keys = [self.bucket_index(grid).label("bucket")]
        keys += [getattr(_c, by)] if by is not None else []
        return [
            select(*keys, func.count())
            .where(*filter_clauses(flt, self), _c.timestamp >= grid.start, _c.timestamp < grid.end)
            .group_by(*keys)
        ]

    def bucket_index(self, grid: BucketGrid) -> ColumnElement[Any]:
        """Each row's bucket in ``grid``, worked out in SQL (for the default histogram)."""
        raise NotImplementedError(f"{type(self).__name__} counts histograms its own way")

    def prune_batch_statement(
        self,
        cutoff: datetime,
        batch_size: int,
        *,
        only: TypeSpec | None = None,
        unless: Sequence[TypeSpec] = (),
    ) -> Delete:
        """Delete the oldest ``batch_size`` events older than ``cutoff`` (one short
        transaction), of the types in ``only`` (all when None) and none of ``unless``."""
        return delete(EVENT_TABLE).where(
            _c.id.in_(self._oldest(cutoff, batch_size, only, unless).scalar_subquery())
        )

    def _oldest(
        self, cutoff: datetime, batch_size: int, only: TypeSpec | None, unless: Sequence[TypeSpec]
    ) -> AnySelect:
        from .._queries import type_clause

        where = [_c.timestamp < cutoff]
        if only is not None:
            where.append(type_clause(only, _c.event_type, self))
        where.extend(not_(type_clause(spec, _c.event_type, self)) for spec in unless)
        return select(_c.id).where(*where).order_by(_c.timestamp, _c.id).limit(batch_size)

    # -- following, indexes -----------------------------------------------------------------

    async def listen(self, db: Database, wake: Callable[..., None]) -> Listener | None:
        """Call ``wake`` whenever any process commits events; None: followers poll."""
        return None

    async def create_data_index(self, engine: AsyncEngine) -> IndexOutcome:
        """Build the optional index that serves ``data_contains``, where one exists."""
        return "unsupported"

    def is_optional_index(self, name: str | None) -> bool:
        """Whether an index found in the database is one the model leaves out on purpose."""
        return False
