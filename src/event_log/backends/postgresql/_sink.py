"""PostgreSQL's write path: a held asyncpg connection, one statement or a COPY per batch.

The sink checks one connection out of the engine's pool (so it connects with
the engine's URL, options and codecs, and the pool's pre-ping) and keeps it
while the logger lives: no checkout, ping or SQLAlchemy transaction per batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

from ..._schema import EVENT_TABLE
from .._sink import Sink, check_count, check_last_seq
from . import NOTIFY_CHANNEL
from ._columns import NULL_MARK, SEPARATOR, joined_columns
from ._copy import copy_text

if TYPE_CHECKING:
    from ..._database import Database
    from ..._models import Row

__all__ = ["PG_STATEMENT_MAX_ROWS", "PostgresSink", "lost_connection"]

_COLUMN_NAMES = [column.name for column in EVENT_TABLE.columns]

# A PostgreSQL batch of up to this many rows is one statement (see PostgresSink).
PG_STATEMENT_MAX_ROWS = 255
_PG_BUMP_SQL = (
    "UPDATE event_log_sequence SET last_seq = last_seq + $1 WHERE id = 1 "
    f"RETURNING last_seq, pg_notify('{NOTIFY_CHANNEL}', last_seq::text)"
)


def _pg_insert_sql(count: str, columns: str) -> str:
    """One statement, so one round trip and its own implicit transaction: reserve
    the numbers (the row lock lasts until the commit; NOTIFY is queued for it)
    and insert the rows, given column by column, numbered in order."""
    return f"""\
WITH bumped AS (
    UPDATE event_log_sequence SET last_seq = last_seq + {count}
    WHERE id = 1
    RETURNING last_seq, pg_notify('{NOTIFY_CHANNEL}', last_seq::text)
), inserted AS (
    INSERT INTO event_log ({", ".join(_COLUMN_NAMES)})
    SELECT r.id, r.event_type, r.source, r.task_id, r.agent_id, r.data::jsonb, r.ts,
           b.last_seq - {count} + r.n
    FROM bumped AS b, unnest({columns}) WITH ORDINALITY
         AS r(id, event_type, source, task_id, agent_id, data, ts, n)
)
SELECT last_seq FROM bumped"""


# The columns as seven delimited texts ($1..$7, see _columns), the row count $8.
_SEPARATOR_SQL = f"E'\\x{ord(SEPARATOR):02x}'"
_SPLIT = f"string_to_array(${{}}, {_SEPARATOR_SQL})"
_SPLIT_NULLS = f"string_to_array(${{}}, {_SEPARATOR_SQL}, E'\\x{ord(NULL_MARK):02x}')"
_PG_INSERT_TEXT_SQL = _pg_insert_sql(
    "$8::bigint",
    ", ".join(
        [
            *(_SPLIT.format(i) for i in (1, 2, 3)),
            *(_SPLIT_NULLS.format(i) for i in (4, 5, 6)),
            f"{_SPLIT.format(7)}::timestamptz[]",
        ]
    ),
)
# The same with one array per column, for rows whose values hold the separators.
_PG_INSERT_ARRAYS_SQL = _pg_insert_sql(
    "cardinality($1::text[])",
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]",
)

# A driver failure that may have cost the connection: retried once on a new one.
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)


class PostgresSink(Sink):
    """PostgreSQL: a connection of its own, driven through asyncpg directly.

    The sink checks one connection out of the engine's pool (so it connects
    with the engine's URL, options and codecs, and the pool's pre-ping) and
    keeps it while the logger lives: no checkout, ping or SQLAlchemy
    transaction per batch. A batch of up to ``PG_STATEMENT_MAX_ROWS`` rows is
    one statement (one round trip, one implicit transaction); a larger one is
    ``BEGIN``, the sequence bump, a binary ``COPY`` and ``COMMIT``, and a
    larger write whose rows are still being made is streamed into a text
    ``COPY`` (:meth:`insert_stream`).

    The sequence row's lock is taken first in both and held until the commit,
    so ``seq`` order is commit order, and the commit carries the NOTIFY.

    On a failure the connection is rolled back, or, when its state is unknown
    (it was lost, or the batch was cancelled halfway), closed and replaced on
    the next batch. A batch that failed because the connection was lost is
    tried once more on a new connection: a transaction that had committed
    after all cannot be stored twice (ids are unique), it fails instead.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the asyncpg connection under self._conn

    async def _connection(self) -> Any:
        driver = self._driver
        if driver is not None and not driver.is_closed():
            return driver
        if self._conn is not None:
            await self._discard()
        conn = await self._db.engine.connect()
        try:
            driver = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise
        assert driver is not None
        self._conn, self._driver = conn, driver
        return driver

    async def _discard(self) -> None:
        """Close the connection (its state is unknown); the next batch gets a new one."""
        conn, driver = self._conn, self._driver
        self._conn = self._driver = None
        if driver is not None:
            driver.terminate()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _recover(self, exc: BaseException) -> None:
        driver = self._driver
        if driver is None:
            return
        if not isinstance(exc, Exception) or driver.is_closed():
            await self._discard()  # cancelled halfway, or lost
            return
        if driver.is_in_transaction():
            try:
                await driver.execute("ROLLBACK")
            except BaseException:
                await self._discard()
                raise

    async def _insert_once(self, rows: Sequence[Row]) -> int:
        driver = await self._connection()
        try:
            if len(rows) <= PG_STATEMENT_MAX_ROWS:
                texts = joined_columns(rows)
                if texts is None:
                    last = await driver.fetchval(_PG_INSERT_ARRAYS_SQL, *zip(*rows, strict=True))
                else:
                    last = await driver.fetchval(_PG_INSERT_TEXT_SQL, *texts, len(rows))
                return check_last_seq(last)
            await driver.execute("BEGIN")
            last_seq = check_last_seq(await driver.fetchval(_PG_BUMP_SQL, len(rows)))
            await driver.copy_records_to_table(
                EVENT_TABLE.name,
                records=[(*r, seq) for seq, r in enumerate(rows, last_seq - len(rows) + 1)],
                columns=_COLUMN_NAMES,
            )
            await driver.execute("COMMIT")
            return last_seq
        except BaseException as exc:
            await self._recover(exc)
            raise

    async def insert(self, rows: Sequence[Row]) -> int:
        try:
            return await self._insert_once(rows)
        except Exception as exc:
            if self._driver is not None or not lost_connection(exc):
                raise
        return await self._insert_once(rows)  # once more, on a new connection

    def streams(self, count: int) -> bool:
        return count > PG_STATEMENT_MAX_ROWS

    async def insert_stream(self, count: int, chunks: Iterator[Sequence[Row]]) -> int:
        """``BEGIN``, the sequence bump, a text ``COPY`` fed chunk by chunk, ``COMMIT``.

        Each chunk is sent as soon as it is made, and the server stores rows
        (see ``_copy``) while the next chunks are made. When ``chunks``
        raises, the rows sent so far are rolled back and its exception is
        raised. A lost connection is survived as in :meth:`insert`: the rows
        made so far, and the rest, go again on a new connection.
        """
        stream = _CopyStream(chunks)
        try:
            return await self._stream_once(count, stream)
        except Exception:
            # Retried only when the connection was found closed (a COPY cut
            # short can surface as any error from inside the driver) and the
            # rows themselves were fine.
            if stream.error is not None or self._driver is not None:
                raise
        rows = [row for chunk in stream.sent for row in chunk]
        rows.extend(row for chunk in chunks for row in chunk)
        check_count(count, len(rows))
        return await self._insert_once(rows)

    async def _stream_once(self, count: int, stream: _CopyStream) -> int:
        driver = await self._connection()
        try:
            await driver.execute("BEGIN")
            last_seq = check_last_seq(await driver.fetchval(_PG_BUMP_SQL, count))
            await driver.copy_to_table(
                EVENT_TABLE.name,
                source=stream.lines(last_seq - count + 1),
                columns=_COLUMN_NAMES,
                format="text",
            )
            if stream.error is not None:
                raise stream.error
            check_count(count, stream.rows)
            await driver.execute("COMMIT")
            return last_seq
        except BaseException as exc:
            await self._recover(exc)
            raise

    async def execute(self, statement: UpdateBase) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount)

    async def close(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            await conn.close()


class _CopyStream:
    """Feeds ``COPY`` from an iterator of row chunks, keeping what it sent.

    An exception from the iterator ends the input (so the ``COPY`` completes
    and the transaction can be rolled back cleanly) and is kept in ``error``,
    rather than being raised inside the driver, which would cancel the
    statement through a second connection.
    """

    def __init__(self, chunks: Iterator[Sequence[Row]]) -> None:
        self._chunks = chunks
        self.sent: list[Sequence[Row]] = []
        self.rows = 0
        self.error: Exception | None = None

    async def lines(self, first_seq: int) -> AsyncIterator[bytes]:
        while True:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return
            except Exception as exc:
                self.error = exc
                return
            if chunk:
                self.sent.append(chunk)
                yield copy_text(chunk, first_seq + self.rows)
                self.rows += len(chunk)


def lost_connection(exc: BaseException) -> bool:
    """True for a failure of the connection itself (not of the statement)."""
    return isinstance(
        exc, (*_CONNECTION_ERRORS, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)
    )
