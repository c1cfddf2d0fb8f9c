"""Where the writer's batches go: the sink contract, and the engine's own sink.

The writer hands a sink a batch of validated rows (tuples in column order);
the sink inserts them in one transaction with the driver's ``executemany``,
skipping SQLAlchemy's per-row parameter processing, which cost more than the
insert itself. Backends with a faster path (SQLite's file sink, PostgreSQL's
COPY) bring a sink of their own; :class:`EngineSink` serves the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

if TYPE_CHECKING:
    from .._database import Database
    from .._models import Row

__all__ = ["EngineSink", "Sink", "check_count", "check_last_seq", "reserve_seq"]


def check_last_seq(value: Any) -> int:
    """The last sequence number a reservation returned; a missing counter row is an error."""
    if value is None:
        raise RuntimeError(
            "event_log_sequence has no row: the schema is incomplete; run event_log.upgrade()"
        )
    return int(value)


def check_count(announced: int, made: int) -> None:
    if made != announced:
        raise RuntimeError(f"a write announced {announced} rows but made {made}")


async def reserve_seq(db: Database, conn: AsyncConnection, count: int) -> int:
    """Reserve ``count`` sequence numbers in ``conn``'s transaction; return the last one.

    The counter row stays locked until that transaction ends.
    """
    *steps, last = db.backend.seq_statements(count)
    for sql in steps:
        if (await conn.exec_driver_sql(sql)).rowcount != 1:
            check_last_seq(None)
    return check_last_seq((await conn.exec_driver_sql(last)).scalar())


class Sink(ABC):
    """Inserts batches and runs maintenance statements, each in its own transaction."""

    @abstractmethod
    async def insert(self, rows: Sequence[Row]) -> None:
        """Insert every row in one transaction, or none."""

    def streams(self, count: int) -> bool:
        """Whether a write of ``count`` rows should reach :meth:`insert_stream` unmade.

        Only a sink that can store the first rows of a batch while the rest
        are still being made says yes; other sinks get the rows gathered first.
        """
        return False

    async def insert_stream(self, count: int, chunks: Iterator[Sequence[Row]]) -> None:
        """Insert the ``count`` rows ``chunks`` makes, in one transaction, or none.

        Called only when :meth:`streams` says so. An exception raised by
        ``chunks`` rolls the transaction back and is raised as it is.
        """
        raise NotImplementedError(f"{type(self).__name__} does not stream writes")

    @abstractmethod
    async def execute(self, statement: UpdateBase) -> int:
        """Run one DML statement in its own transaction; return the affected row count."""

    def committed(self) -> None:  # noqa: B027 - most databases tell nobody
        """Rows were committed outside :meth:`insert` (an import): tell other
        processes' followers, where the database has a way to."""

    async def reclaim(self, pages: int) -> int:
        """Give up to ``pages`` free pages back to the file system; return how many.

        Only databases that keep free pages in their file have anything to give.
        A step may stop short of ``pages`` to keep its hold on the write lock short.
        """
        return 0

    async def close(self) -> None:  # noqa: B027 - most sinks hold nothing of their own
        """Release what the sink holds (never the caller's engine)."""


class EngineSink(Sink):
    """Writes through the logger's SQLAlchemy engine, with the driver's executemany.

    The in-memory SQLite database (which only the engine's one connection can
    see) and MariaDB take this path: each batch borrows an engine connection.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = db.backend.insert_sql(db.engine.dialect)

    async def insert(self, rows: Sequence[Row]) -> None:
        async with self._db.begin() as conn:
            last_seq = await reserve_seq(self._db, conn, len(rows))
            params = self._db.backend.bind_rows(rows, last_seq)
            await conn.exec_driver_sql(self._sql, params)

    async def execute(self, statement: UpdateBase) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount)
