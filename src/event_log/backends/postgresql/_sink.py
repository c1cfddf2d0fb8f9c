"""PostgreSQL's write path: a held connection, one statement or a COPY per batch.

What is the same whatever the driver lives here: the SQL, the order of the
steps, and what happens on a failure (roll back, or discard the connection
and try once more on a new one). The driver's calls live in ``_asyncpg`` and
``_psycopg``, each a :class:`PostgresSink`; only the one the engine's URL
names is ever imported.

A write shares nothing with other writers: no counter row, no lock held to
the commit, no NOTIFY inside its transaction (PostgreSQL commits notifying
transactions one at a time). The server stamps each row with its
transaction's id (``_snapshots`` says how followers read by it), and the
wake-up for other processes goes afterwards, coalesced (``_notify``).
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

from ..._errors import error_chain
from .._sink import Sink, check_count
from . import NOTIFY_CHANNEL
from ._columns import NULL_MARK, SEPARATOR, joined_columns
from ._copy import COPY_COLUMNS, copy_text
from ._notify import CommitNotifier

if TYPE_CHECKING:
    from ..._database import Database
    from ..._models import Row

__all__ = [
    "CONNECTION_ERRORS",
    "INSERT_ARRAYS_SQL",
    "INSERT_ONE_SQL",
    "INSERT_TEXT_SQL",
    "PG_STATEMENT_MAX_ROWS",
    "SESSION_ENDED",
    "STORED_SQL",
    "UNIQUE_VIOLATION",
    "CopyStream",
    "PostgresSink",
    "lost_connection",
    "make_sink",
]

# A PostgreSQL batch of up to this many rows is one statement (see PostgresSink).
PG_STATEMENT_MAX_ROWS = 255


def _insert_sql(columns: str) -> str:
    """One statement, so one round trip and its own implicit transaction: the rows,
    given column by column."""
    return f"""\
INSERT INTO event_log ({", ".join(COPY_COLUMNS)})
SELECT r.id, r.event_type, r.source, r.task_id, r.agent_id, r.data::jsonb, r.ts
FROM unnest({columns}) AS r(id, event_type, source, task_id, agent_id, data, ts)"""


# The columns as seven delimited texts ($1..$7, see _columns). The SQL numbers its
# parameters ($1, $2, ...): asyncpg's placeholders, and psycopg's raw cursors'.
_SEPARATOR_SQL = f"E'\\x{ord(SEPARATOR):02x}'"
_SPLIT = f"string_to_array(${{}}::text, {_SEPARATOR_SQL})"
_SPLIT_NULLS = f"string_to_array(${{}}::text, {_SEPARATOR_SQL}, E'\\x{ord(NULL_MARK):02x}')"
INSERT_TEXT_SQL = _insert_sql(
    ", ".join(
        [
            *(_SPLIT.format(i) for i in (1, 2, 3)),
            *(_SPLIT_NULLS.format(i) for i in (4, 5, 6)),
            f"{_SPLIT.format(7)}::timestamptz[]",
        ]
    ),
)
# The same with one array per column, for rows whose values hold the separators.
INSERT_ARRAYS_SQL = _insert_sql(
    "$1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]",
)

# One row: the plainest statement, which costs the server least.
INSERT_ONE_SQL = (
    f"INSERT INTO event_log ({', '.join(COPY_COLUMNS)}) "
    "VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7)"
)

# Whether all $2 rows with these ids ($1) are stored.
STORED_SQL = "SELECT count(*) = $2::bigint FROM event_log WHERE id = ANY($1::text[])"
UNIQUE_VIOLATION = "23505"

# A failure that may have cost the connection, whatever the driver.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, ConnectionError, TimeoutError)
# Server errors that end the session: admin_shutdown (pg_terminate_backend),
# crash_shutdown, cannot_connect_now.
SESSION_ENDED = frozenset({"57P01", "57P02", "57P03"})


class PostgresSink(Sink):
    """PostgreSQL: a connection of its own, driven through its driver directly.

    The sink checks one connection out of the engine's pool (so it connects
    with the engine's URL, options and codecs, and the pool's pre-ping) and
    keeps it while the logger lives: no checkout, ping or SQLAlchemy
    transaction per batch. A batch of up to ``PG_STATEMENT_MAX_ROWS`` rows is
    one statement (one round trip, one implicit transaction); a larger one is
    ``BEGIN``, a ``COPY`` and ``COMMIT``, and a larger write whose rows are
    still being made is streamed into a text ``COPY`` the same way
    (:meth:`insert_stream`). After each commit the notifier is told.

    On a failure the connection is rolled back, or, when its state is unknown
    (it was lost, or the batch was cancelled halfway), closed and replaced on
    the next batch. A batch that failed because the connection was lost,
    whichever way the driver said so (:func:`lost_connection`), is tried once
    more on a new connection: a transaction that had committed after all
    cannot be stored twice (ids are unique), and when that retry fails on
    the ids with every row of the batch found stored, the batch counts as
    written. None of this costs a round trip while nothing fails.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the driver's connection under self._conn
        self._notifier = CommitNotifier(db, NOTIFY_CHANNEL)

    # -- the driver's part ----------------------------------------------------------------

    @abstractmethod
    async def _prepare(self, conn: AsyncConnection) -> None:
        """Set up a connection just checked out of the pool, before its first batch."""

    @abstractmethod
    def _is_closed(self, driver: Any) -> bool:
        """Whether the connection is known to be lost."""

    @abstractmethod
    def _in_transaction(self, driver: Any) -> bool:
        """Whether the connection is idle inside a transaction (one to roll back)."""

    @abstractmethod
    def _is_idle(self, driver: Any) -> bool:
        """Whether the connection is idle: no statement running, no transaction open."""

    @abstractmethod
    def _terminate(self, driver: Any) -> None:
        """Close the connection at once, whatever its state."""

    @abstractmethod
    async def _command(self, driver: Any, sql: str) -> None:
        """Run a statement without parameters (``BEGIN``, ``COMMIT``, ``ROLLBACK``)."""

    @abstractmethod
    async def _execute(self, driver: Any, sql: str, *args: Any) -> None:
        """Run a statement that returns no rows."""

    @abstractmethod
    async def _value(self, driver: Any, sql: str, *args: Any) -> Any:
        """The first value of the first row ``sql`` returns."""

    @abstractmethod
    async def _copy(self, driver: Any, rows: Sequence[Row]) -> None:
        """``COPY`` ``rows`` into ``event_log``."""

    @abstractmethod
    async def _copy_stream(self, driver: Any, lines: AsyncIterator[bytes]) -> None:
        """``COPY`` text ``lines`` into ``event_log`` as they are made."""

    @abstractmethod
    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection itself was lost (not the statement)."""

    # -- shared -----------------------------------------------------------------------------

    async def _connection(self) -> Any:
        driver = self._driver
        if driver is not None and not self._is_closed(driver):
            return driver
        if self._conn is not None:
            await self._discard()
        conn = await self._db.engine.connect()
        try:
            await self._prepare(conn)
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
            self._terminate(driver)
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _recover(self, exc: BaseException) -> None:
        driver = self._driver
        if driver is None:
            return
        if not isinstance(exc, Exception) or self._is_closed(driver) or self._lost(exc):
            # Cancelled halfway, or lost: asyncpg may not know yet that its connection
            # is gone (the server's goodbye can arrive before the socket closes, and
            # the next call then fails on the protocol's state instead).
            await self._discard()
            return
        if self._in_transaction(driver):
            try:
                await self._command(driver, "ROLLBACK")
            except BaseException:
                await self._discard()
                raise
        elif not self._is_idle(driver):
            await self._discard()  # a statement still running: its outcome is unknown

    async def _statement(self, driver: Any, rows: Sequence[Row]) -> None:
        if len(rows) == 1:
            await self._execute(driver, INSERT_ONE_SQL, *rows[0])
            return
        texts = joined_columns(rows)
        if texts is None:
            await self._execute(driver, INSERT_ARRAYS_SQL, *map(list, zip(*rows, strict=True)))
        else:
            await self._execute(driver, INSERT_TEXT_SQL, *texts)

    async def _insert_once(self, rows: Sequence[Row]) -> None:
        driver = await self._connection()
        try:
            if len(rows) <= PG_STATEMENT_MAX_ROWS:
                await self._statement(driver, rows)
            else:
                # In a transaction block, so that a batch cancelled or cut off
                # before COMMIT is surely not stored (a COPY alone could finish).
                await self._command(driver, "BEGIN")
                await self._copy(driver, rows)
                await self._command(driver, "COMMIT")
        except BaseException as exc:
            await self._recover(exc)
            raise

    async def insert(self, rows: Sequence[Row]) -> None:
        try:
            await self._insert_once(rows)
        except Exception as exc:
            if not self._lost(exc):
                raise
            await self._again(rows)
        self.committed()

    def committed(self) -> None:
        self._notifier.poke()

    async def _again(self, rows: Sequence[Row]) -> None:
        """Insert ``rows`` once more, on a new connection: the last try lost its own.

        That try may have committed before the connection went (only its answer
        was lost): then this one fails on the ids, which are unique. Every row
        of it stored means exactly that (the writer's ids are new, and a
        transaction stores all its rows or none), so it counts as written.
        """
        try:
            await self._insert_once(rows)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) != UNIQUE_VIOLATION:
                raise
            try:
                driver = await self._connection()
                stored = await self._value(driver, STORED_SQL, [row[0] for row in rows], len(rows))
            except Exception as check_exc:
                await self._recover(check_exc)
                raise  # whether the first try committed is unknown: say why
            if not stored:
                raise

    def streams(self, count: int) -> bool:
        return count > PG_STATEMENT_MAX_ROWS

    async def insert_stream(self, count: int, chunks: Iterator[Sequence[Row]]) -> None:
        """``BEGIN``, a text ``COPY`` fed chunk by chunk, ``COMMIT``.

        Each chunk is sent as soon as it is made, and the server stores rows
        (see ``_copy``) while the next chunks are made. When ``chunks``
        raises, the rows sent so far are rolled back and its exception is
        raised. A lost connection is survived as in :meth:`insert`: the rows
        made so far, and the rest, go again on a new connection.
        """
        stream = CopyStream(chunks)
        try:
            await self._stream_once(count, stream)
        except Exception:
            # Retried only when the connection was found closed (a COPY cut
            # short can surface as any error from inside the driver) and the
            # rows themselves were fine.
            if stream.error is not None or self._driver is not None:
                raise
            rows = [row for chunk in stream.sent for row in chunk]
            rows.extend(row for chunk in chunks for row in chunk)
            check_count(count, len(rows))
            await self._again(rows)
        self.committed()

    async def _stream_once(self, count: int, stream: CopyStream) -> None:
        driver = await self._connection()
        try:
            await self._command(driver, "BEGIN")
            await self._copy_stream(driver, stream.lines())
            if stream.error is not None:
                raise stream.error
            check_count(count, stream.rows)
            await self._command(driver, "COMMIT")
        except BaseException as exc:
            await self._recover(exc)
            raise

    async def execute(self, statement: UpdateBase) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount)

    async def close(self) -> None:
        try:
            await self._notifier.close()
        finally:
            conn, self._conn, self._driver = self._conn, None, None
            if conn is not None:
                await conn.close()


class CopyStream:
    """Feeds ``COPY`` from an iterator of row chunks, keeping what it sent.

    An exception from the iterator ends the input (so the ``COPY`` completes
    and the transaction can be rolled back cleanly) and is kept in ``error``,
    rather than being raised inside the driver, which would abort the
    ``COPY`` in ways that differ from one driver to the next (asyncpg cancels
    the statement through a second connection).
    """

    def __init__(self, chunks: Iterator[Sequence[Row]]) -> None:
        self._chunks = chunks
        self.sent: list[Sequence[Row]] = []
        self.rows = 0
        self.error: Exception | None = None

    async def lines(self) -> AsyncIterator[bytes]:
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
                yield copy_text(chunk)
                self.rows += len(chunk)


def make_sink(db: Database) -> PostgresSink:
    """The sink of ``db``'s driver (imported only now: the other may not be installed)."""
    if db.engine.dialect.driver == "psycopg":
        from ._psycopg import PsycopgSink

        return PsycopgSink(db)
    from ._asyncpg import AsyncpgSink

    return AsyncpgSink(db)


def lost_connection(exc: BaseException) -> bool:
    """True for a failure of the connection itself (not of the statement), from either
    driver, as raised or wrapped by SQLAlchemy: the exception's own package says which
    driver raised it."""
    for link in error_chain(exc):
        if isinstance(link, CONNECTION_ERRORS):
            return True
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        package = type(link).__module__.partition(".")[0]
        if package == "asyncpg":
            from ._asyncpg import lost_connection as asyncpg_lost

            if asyncpg_lost(link):
                return True
        elif package == "psycopg":
            from ._psycopg import lost_connection as psycopg_lost

            if psycopg_lost(link):
                return True
    return False
