"""SQLite: the embedded default. WAL files written by a sink of their own, JSON filters
built from ``json_each``, histograms counted as index ranges, and free pages handed
back to the file system after a prune."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import ColumnElement, Dialect, String, Text, and_, insert, literal_column
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from ..._schema import EVENT_TABLE, WRITTEN_COLUMNS
from .._backend import Backend, BackendName
from ._engine import create_sqlite_engine, file_path, is_memory, prepare_path
from ._json import data_clauses
from ._sink import bump_sql, text_rows
from ._types import TextTimestamp

if TYPE_CHECKING:
    from ..._data_filters import DataFilter
    from ..._database import Database
    from ..._filters import EventFilter
    from ..._models import Row
    from ..._queries import AnySelect, BucketGrid, HistogramGroup
    from .._sink import Sink

__all__ = ["BACKEND", "SQLiteBackend"]

# A unary "+" keeps SQLite's planner from using an index on the column.
_UNINDEXED_TYPE: ColumnElement[str] = literal_column("+event_log.event_type", String)


class SQLiteBackend(Backend):
    """SQLite through aiosqlite (reads) and the stdlib ``sqlite3`` module (writes)."""

    name: ClassVar[BackendName] = "sqlite"
    extra = None  # aiosqlite is a dependency of event-log itself
    drivers: ClassVar[dict[str, str]] = {"aiosqlite": "aiosqlite"}
    render_as_batch = True

    def create_engine(
        self, url: URL, *, read_only: bool = False, **engine_kwargs: Any
    ) -> AsyncEngine:
        return create_sqlite_engine(url, read_only=read_only, **engine_kwargs)

    def prepare_path(self, url: URL) -> None:
        prepare_path(url)

    def is_memory(self, url: URL) -> bool:
        return is_memory(url)

    def file_path(self, url: URL) -> str | None:
        return file_path(url)

    def timestamp_type(self) -> TypeEngine[datetime]:
        return TextTimestamp()

    def json_type(self) -> TypeEngine[Any]:
        return Text()

    def seq_statements(self, count: int) -> tuple[str, ...]:
        return (bump_sql(count),)

    def bind_rows(self, rows: Sequence[Row], last_seq: int) -> list[tuple[Any, ...]]:
        return text_rows(rows, last_seq)

    def insert_sql(self, dialect: Dialect) -> str:
        """``INSERT OR ROLLBACK``: a failed row fails its whole transaction, as the
        writer treats it anyway. With revision 0003's trigger on the table, a plain
        INSERT (whose constraints would abort the statement alone) kept a statement
        journal for every row, which halved batch writes (see that revision)."""
        return str(
            insert(EVENT_TABLE)
            .prefix_with("OR ROLLBACK")
            .compile(dialect=dialect, column_keys=WRITTEN_COLUMNS)
        )

    def make_sink(self, db: Database) -> Sink:
        url = db.engine.url
        if db.shared_connection or not url.database or url.query:
            # In memory only the engine's one connection sees the database; a URI
            # with options is the engine's to interpret.
            return super().make_sink(db)
        from ._sink import SQLiteFileSink

        return SQLiteFileSink(db, url.database)

    def type_column(self, *, walk_time_index: bool) -> ColumnElement[str]:
        # Sorted by (timestamp, id), the planner would serve a multi-type or prefix
        # filter from the event_type index and then sort; with that index disabled
        # it walks one already in (timestamp, id) order and stops after ``limit``.
        # A summary reads only its time window that way, not every row of a type.
        return _UNINDEXED_TYPE if walk_time_index else super().type_column(walk_time_index=False)

    def prefix_clause(self, column: ColumnElement[str], prefix: str) -> ColumnElement[bool]:
        # SQLite compares text bytewise: a half-open range is exact and can use the index.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # "task." -> "task/"
        return and_(column >= prefix, column < upper)

    def data_clauses(
        self, data: DataFilter, column: ColumnElement[Any]
    ) -> list[ColumnElement[bool]]:
        return data_clauses(data, column)

    def histogram_statements(
        self, flt: EventFilter, grid: BucketGrid, by: HistogramGroup | None, *, pooled: bool
    ) -> list[AnySelect]:
        from ._histogram import ranged_histogram

        # A file has a pool of connections, each reading on a thread of its own:
        # the two halves of the buckets are counted at once (two snapshots, like
        # any two reads of a live log).
        halves = 2 if pooled else 1
        step = max(1, -(-grid.count // halves))
        return [
            ranged_histogram(self, flt, grid, by, range(first, min(first + step, grid.count)))
            for first in range(0, grid.count, step)
        ]


BACKEND = SQLiteBackend()
