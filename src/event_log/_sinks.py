"""Where the writer's batches go: one round trip to the database per transaction.

The writer hands a sink a batch of validated rows (tuples in column order);
the sink inserts them in one transaction with the driver's ``executemany``,
skipping SQLAlchemy's per-row parameter processing, which cost more than the
insert itself. Three sinks:

- :class:`SQLiteFileSink` for SQLite files: its own stdlib ``sqlite3``
  connection on one dedicated thread, so a whole transaction (BEGIN IMMEDIATE,
  executemany, COMMIT) is a single hop off the event loop. Through aiosqlite
  the same work is four or five hops. A batch of a few rows is cheaper still
  to commit on the loop itself (a WAL commit at synchronous=NORMAL writes to
  the page cache, tens of microseconds, less than the hop), through a second
  connection that never waits: its busy timeout is 0, so a lock held by
  another process sends the batch to the thread instead. Neither connection
  checkpoints on commit (SQLite's default every 1,000 WAL pages made the
  checkpoint's copy and fsync the largest cost of a sustained write load);
  a third connection on a thread of its own runs a passive checkpoint every
  ``CHECKPOINT_EVERY_ROWS`` rows instead, beside the writer (WAL lets a
  checkpoint and a writer run at once), so the WAL stays bounded and no
  checkpoint runs on the loop or delays a batch. Readers keep using the engine's own
  connections.
- :class:`PostgresSink` for PostgreSQL through asyncpg: one held connection,
  one statement per small batch, ``COPY`` for a large one, and a streamed
  ``COPY`` for a large write whose rows are made while it runs.
- :class:`EngineSink` for everything else (MariaDB via asyncmy, the in-memory
  SQLite database that only the engine's one connection can see).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

from ._database import Database
from ._engine import backend_name, sqlite_pragmas
from ._models import Row
from ._pg_columns import NULL_MARK, SEPARATOR, joined_columns
from ._pg_copy import copy_text
from ._schema import EventRecord

__all__ = [
    "NOTIFY_CHANNEL",
    "EngineSink",
    "PostgresSink",
    "SQLiteFileSink",
    "Sink",
    "make_sink",
    "reserve_seq",
]

_table = cast(Table, EventRecord.__table__)
_COLUMN_NAMES = [column.name for column in _table.columns]
log = logging.getLogger("event_log")


# The PostgreSQL channel every commit is announced on (see _follow).
NOTIFY_CHANNEL = "event_log"


# How each backend reserves sequence numbers: statements run in order on the
# write transaction's connection; every one but the last must change exactly the
# counter row, and the last returns the last number reserved. The counter row's
# lock lasts until the commit, so numbers are handed out in commit order.


def _returning(count: int) -> tuple[str, ...]:
    """SQLite: one UPDATE ... RETURNING."""
    return (
        f"UPDATE event_log_sequence SET last_seq = last_seq + {int(count)} "
        "WHERE id = 1 RETURNING last_seq",
    )


def _returning_and_notify(count: int) -> tuple[str, ...]:
    """PostgreSQL: the same UPDATE also queues a NOTIFY, which the server delivers
    when (and only if) the transaction commits: followers in any process wake."""
    (bump,) = _returning(count)
    return (
        f"WITH bumped AS ({bump}) "
        f"SELECT last_seq, pg_notify('{NOTIFY_CHANNEL}', last_seq::text) FROM bumped",
    )


def _last_insert_id(count: int) -> tuple[str, ...]:
    """MariaDB has no UPDATE ... RETURNING: LAST_INSERT_ID(expr) keeps the new value
    for this connection, and the next statement reads it back."""
    return (
        "UPDATE event_log_sequence SET last_seq = LAST_INSERT_ID(last_seq + "
        f"{int(count)}) WHERE id = 1",
        "SELECT LAST_INSERT_ID()",
    )


_SEQ_STATEMENTS: dict[str, Callable[[int], tuple[str, ...]]] = {
    "sqlite": _returning,
    "postgresql": _returning_and_notify,
    "mysql": _last_insert_id,
}


def _next_seq_statements(count: int, dialect: str) -> tuple[str, ...]:
    """The statements that reserve ``count`` sequence numbers on ``dialect``."""
    return _SEQ_STATEMENTS[backend_name(dialect)](count)


def _next_seq_sql(count: int, dialect: str = "sqlite") -> str:
    """Reserve ``count`` sequence numbers in one statement (SQLite, PostgreSQL)."""
    (sql,) = _next_seq_statements(count, dialect)
    return sql


def _check_last_seq(value: Any) -> int:
    if value is None:
        raise RuntimeError(
            "event_log_sequence has no row: the schema is incomplete; run event_log.upgrade()"
        )
    return int(value)


async def reserve_seq(conn: AsyncConnection, count: int) -> int:
    """Reserve ``count`` sequence numbers in ``conn``'s transaction; return the last one.

    The counter row stays locked until that transaction ends.
    """
    *steps, last = _next_seq_statements(count, conn.dialect.name)
    for sql in steps:
        if (await conn.exec_driver_sql(sql)).rowcount != 1:
            _check_last_seq(None)
    return _check_last_seq((await conn.exec_driver_sql(last)).scalar())


def _numbered_rows(
    rows: Sequence[Row], last_seq: int, *, sqlite: bool, naive_utc: bool = False
) -> list[tuple[Any, ...]]:
    """Rows with their sequence numbers, timestamps in the backend's bind form.

    On SQLite that is ``format_utc``'s text; row timestamps are already UTC
    (validation converts them), so ``isoformat()`` alone gives it. On MariaDB
    (``naive_utc``) it is the naive UTC datetime its DATETIME column holds.
    """
    first = last_seq - len(rows) + 1
    if sqlite:
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6].isoformat(timespec="microseconds"), seq)
            for seq, r in enumerate(rows, first)
        ]
    if naive_utc:
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5], r[6].replace(tzinfo=None), seq)
            for seq, r in enumerate(rows, first)
        ]
    return [(*r, seq) for seq, r in enumerate(rows, first)]


def _check_count(announced: int, made: int) -> None:
    if made != announced:
        raise RuntimeError(f"a write announced {announced} rows but made {made}")


class Sink(ABC):
    """Inserts batches and runs maintenance statements, each in its own transaction."""

    @abstractmethod
    async def insert(self, rows: Sequence[Row]) -> int:
        """Insert every row in one transaction, or none; return the last sequence number."""

    def streams(self, count: int) -> bool:
        """Whether a write of ``count`` rows should reach :meth:`insert_stream` unmade.

        Only PostgreSQL's COPY can store the first rows of a batch while the
        rest are still being made; other sinks get the rows gathered first.
        """
        return False

    async def insert_stream(self, count: int, chunks: Iterator[Sequence[Row]]) -> int:
        """Insert the ``count`` rows ``chunks`` makes, in one transaction, or none.

        Called only when :meth:`streams` says so. An exception raised by
        ``chunks`` rolls the transaction back and is raised as it is.
        """
        raise NotImplementedError(f"{type(self).__name__} does not stream writes")

    @abstractmethod
    async def execute(self, statement: UpdateBase) -> int:
        """Run one DML statement in its own transaction; return the affected row count."""

    async def reclaim(self, pages: int) -> int:
        """Give up to ``pages`` free pages back to the file system; return how many.

        Only SQLite files in incremental auto-vacuum mode have anything to give.
        A step may stop short of ``pages`` to keep its hold on the write lock short.
        """
        return 0

    async def close(self) -> None:  # noqa: B027 - most sinks hold nothing of their own
        """Release what the sink holds (never the caller's engine)."""


class EngineSink(Sink):
    """Writes through the logger's SQLAlchemy engine, with the driver's executemany.

    The in-memory SQLite database (and any other engine without a sink of its
    own) takes this path: each batch borrows the engine's connection.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sql = str(insert(_table).compile(dialect=db.engine.dialect))
        self._sqlite = db.dialect == "sqlite"
        self._naive_utc = db.dialect == "mysql"

    async def insert(self, rows: Sequence[Row]) -> int:
        async with self._db.begin() as conn:
            last_seq = await reserve_seq(conn, len(rows))
            params = _numbered_rows(rows, last_seq, sqlite=self._sqlite, naive_utc=self._naive_utc)
            await conn.exec_driver_sql(self._sql, params)
        return last_seq

    async def execute(self, statement: UpdateBase) -> int:
        async with self._db.begin() as conn:
            result = await conn.execute(statement)
            return int(result.rowcount)


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


# The columns as seven delimited texts ($1..$7, see _pg_columns), the row count $8.
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
                return _check_last_seq(last)
            await driver.execute("BEGIN")
            last_seq = _check_last_seq(await driver.fetchval(_PG_BUMP_SQL, len(rows)))
            await driver.copy_records_to_table(
                _table.name,
                records=_numbered_rows(rows, last_seq, sqlite=False),
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
            if self._driver is not None or not _lost_connection(exc):
                raise
        return await self._insert_once(rows)  # once more, on a new connection

    def streams(self, count: int) -> bool:
        return count > PG_STATEMENT_MAX_ROWS

    async def insert_stream(self, count: int, chunks: Iterator[Sequence[Row]]) -> int:
        """``BEGIN``, the sequence bump, a text ``COPY`` fed chunk by chunk, ``COMMIT``.

        Each chunk is sent as soon as it is made, and the server stores rows
        (see ``_pg_copy``) while the next chunks are made. When ``chunks``
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
        _check_count(count, len(rows))
        return await self._insert_once(rows)

    async def _stream_once(self, count: int, stream: _CopyStream) -> int:
        driver = await self._connection()
        try:
            await driver.execute("BEGIN")
            last_seq = _check_last_seq(await driver.fetchval(_PG_BUMP_SQL, count))
            await driver.copy_to_table(
                _table.name,
                source=stream.lines(last_seq - count + 1),
                columns=_COLUMN_NAMES,
                format="text",
            )
            if stream.error is not None:
                raise stream.error
            _check_count(count, stream.rows)
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


def _lost_connection(exc: BaseException) -> bool:
    """True for a failure of the connection itself (not of the statement)."""
    return isinstance(
        exc, (*_CONNECTION_ERRORS, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)
    )


# Batches up to this many rows commit on the loop (see the module docstring).
INLINE_MAX_ROWS = 8
# Rows written between two checkpoints (run on the thread; a few MB of WAL).
CHECKPOINT_EVERY_ROWS = 20_000
# The longest a reclaim step moves pages while holding the write lock.
RECLAIM_STEP_SECONDS = 0.01


def _connect(path: str, pragmas: Sequence[str]) -> sqlite3.Connection:
    # isolation_level=None: transactions are exactly our BEGIN/COMMIT.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in pragmas:
        conn.execute(pragma)
    return conn


def _transaction(conn: sqlite3.Connection, sql: str, rows: Sequence[Row] | None) -> int:
    """Insert numbered ``rows`` (returns the last seq), or run ``sql`` alone (returns rowcount)."""
    # IMMEDIATE takes the write lock up front (waiting up to the busy timeout
    # for other processes), so the commit itself cannot be refused.
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rows is None:
            result = conn.execute(sql).rowcount
        else:
            bumped = conn.execute(_next_seq_sql(len(rows))).fetchone()
            result = _check_last_seq(None if bumped is None else bumped[0])
            conn.executemany(sql, _numbered_rows(rows, result, sqlite=True))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _freelist(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


class SQLiteFileSink(Sink):
    """Writes to an SQLite file through private connections: one thread, or the loop."""

    def __init__(self, db: Database, path: str) -> None:
        self._path = path
        self._dialect = db.engine.dialect
        self._sql = str(insert(_table).compile(dialect=self._dialect))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event_log-writer")
        # Checkpoints get a thread and a connection of their own: in WAL mode a
        # passive checkpoint runs beside a writer, so it never delays a batch.
        self._checkpointer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="event_log-checkpoint"
        )
        self._thread_conn: sqlite3.Connection | None = None  # used on the writer thread only
        self._inline_conn: sqlite3.Connection | None = None  # used on the loop only
        self._checkpoint_conn: sqlite3.Connection | None = None  # checkpoint thread only
        self._checkpoint_pending: Future[None] | None = None
        self._rows_since_checkpoint = 0
        self._pages_moved = False  # reclaim steps ran since the last checkpoint

    # -- on the writer thread --------------------------------------------------------------

    def _on_thread_transaction(self, sql: str, rows: Sequence[Row] | None) -> int:
        if self._thread_conn is None:
            pragmas = [*sqlite_pragmas(memory=False), "PRAGMA wal_autocheckpoint = 0"]
            self._thread_conn = _connect(self._path, pragmas)
        return _transaction(self._thread_conn, sql, rows)

    def _close(self) -> None:
        for conn in (self._thread_conn, self._inline_conn):
            if conn is not None:
                conn.close()
        self._thread_conn = self._inline_conn = None

    # -- on the checkpoint thread ----------------------------------------------------------

    def _checkpoint(self) -> None:
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = _connect(self._path, sqlite_pragmas(memory=False))
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            log.warning("event_log: WAL checkpoint of %s failed", self._path, exc_info=True)

    def _close_checkpointer(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    # -- on the event loop -----------------------------------------------------------------

    async def _on_thread(self, sql: str, rows: Sequence[Row] | None) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._on_thread_transaction, sql, rows)

    def _try_inline(self, rows: Sequence[Row]) -> int | None:
        """Commit a small batch on the loop (its last seq); None when another process holds
        the lock."""
        if self._inline_conn is None:
            pragmas = [
                *sqlite_pragmas(memory=False),
                "PRAGMA busy_timeout = 0",  # never wait on the loop
                "PRAGMA wal_autocheckpoint = 0",  # never fsync on the loop
            ]
            self._inline_conn = _connect(self._path, pragmas)
        try:
            return _transaction(self._inline_conn, self._sql, rows)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return None
            raise

    async def insert(self, rows: Sequence[Row]) -> int:
        last_seq = self._try_inline(rows) if len(rows) <= INLINE_MAX_ROWS else None
        if last_seq is None:
            last_seq = await self._on_thread(self._sql, rows)
        self._rows_since_checkpoint += len(rows)
        if self._rows_since_checkpoint >= CHECKPOINT_EVERY_ROWS:
            self._checkpoint_soon()
        return last_seq

    def _checkpoint_soon(self) -> None:
        """Start a checkpoint in the background unless one is running.

        Neither the loop nor the next batch waits for it.
        """
        pending = self._checkpoint_pending
        if pending is None or pending.done():
            self._rows_since_checkpoint = 0
            self._checkpoint_pending = self._checkpointer.submit(self._checkpoint)

    def _reclaim_on_thread(self, pages: int) -> tuple[int, int]:
        """One reclaim step: (pages freed, free pages left)."""
        if self._thread_conn is None:
            pragmas = [*sqlite_pragmas(memory=False), "PRAGMA wal_autocheckpoint = 0"]
            self._thread_conn = _connect(self._path, pragmas)
        conn = self._thread_conn
        mode, free = conn.execute("PRAGMA auto_vacuum").fetchone()[0], _freelist(conn)
        if mode != 2 or not free:  # 2: INCREMENTAL
            return 0, free
        # Moving a page costs from microseconds to a millisecond (it rewrites the
        # page's parent and pointer-map entries), so a step is bounded by time as
        # well as by count: a page at a time until RECLAIM_STEP_SECONDS have passed.
        # incremental_vacuum(1) is complete in one step of its statement, which is
        # all the sqlite3 module runs of a statement that returns no rows.
        conn.execute("BEGIN IMMEDIATE")
        try:
            deadline = time.perf_counter() + RECLAIM_STEP_SECONDS
            for _ in range(min(pages, free)):
                conn.execute("PRAGMA incremental_vacuum(1)")
                if time.perf_counter() >= deadline:
                    break
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        left = _freelist(conn)
        return free - left, left

    async def reclaim(self, pages: int) -> int:
        loop = asyncio.get_running_loop()
        freed, left = await loop.run_in_executor(self._executor, self._reclaim_on_thread, pages)
        self._pages_moved = self._pages_moved or freed > 0
        if not left and self._pages_moved:
            # The last step: the file only gets shorter when a checkpoint copies
            # the moved pages back, so start one now rather than after 20k rows.
            self._pages_moved = False
            self._checkpoint_soon()
        return freed

    async def execute(self, statement: UpdateBase) -> int:
        # Literal binds: the only values here are our own cutoff and batch size.
        sql = str(statement.compile(dialect=self._dialect, compile_kwargs={"literal_binds": True}))
        return await self._on_thread(sql, None)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._close)
            await loop.run_in_executor(self._checkpointer, self._close_checkpointer)
        finally:
            self._executor.shutdown(wait=False)
            self._checkpointer.shutdown(wait=False)


def make_sink(db: Database) -> Sink:
    """The fastest sink that sees the same database as ``db``'s engine."""
    url = db.engine.url
    if db.dialect == "sqlite" and not db.shared_connection and url.database and not url.query:
        return SQLiteFileSink(db, url.database)
    if db.dialect == "postgresql" and db.engine.dialect.driver == "asyncpg":
        return PostgresSink(db)
    return EngineSink(db)
