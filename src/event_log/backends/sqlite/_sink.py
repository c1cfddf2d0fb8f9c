"""SQLite files: a sink with private connections, one thread, or the loop itself.

The sink writes through its own stdlib ``sqlite3`` connection on one dedicated
thread, so a whole transaction (BEGIN IMMEDIATE, executemany, COMMIT) is a
single hop off the event loop. Through aiosqlite the same work is four or five
hops. A batch of a few rows is cheaper still to commit on the loop itself (a
WAL commit at synchronous=NORMAL writes to the page cache, tens of
microseconds, less than the hop), through a second connection that never
waits: its busy timeout is 0, so a lock held by another process sends the
batch to the thread instead. Neither connection checkpoints on commit
(SQLite's default every 1,000 WAL pages made the checkpoint's copy and fsync
the largest cost of a sustained write load); a third connection on a thread
of its own runs a passive checkpoint every ``CHECKPOINT_EVERY_ROWS`` rows
instead, beside the writer (WAL lets a checkpoint and a writer run at once),
so the WAL stays bounded and no checkpoint runs on the loop or delays a batch.
Readers keep using the engine's own connections.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy.sql.dml import UpdateBase

from .._sink import Sink, check_last_seq
from ._engine import sqlite_pragmas

if TYPE_CHECKING:
    from ..._database import Database
    from ..._models import Row

__all__ = ["CHECKPOINT_EVERY_ROWS", "INLINE_MAX_ROWS", "SQLiteFileSink", "bump_sql", "text_rows"]

log = logging.getLogger("event_log")


def bump_sql(count: int) -> str:
    """Reserve ``count`` sequence numbers: one UPDATE ... RETURNING."""
    return (
        f"UPDATE event_log_sequence SET last_seq = last_seq + {int(count)} "
        "WHERE id = 1 RETURNING last_seq"
    )


def text_rows(rows: Sequence[Row], last_seq: int) -> list[tuple[Any, ...]]:
    """Rows numbered up to ``last_seq``, timestamps as the stored text.

    Row timestamps are already UTC (validation converts them), so
    ``isoformat()`` alone gives ``format_utc``'s text.
    """
    first = last_seq - len(rows) + 1
    return [
        (r[0], r[1], r[2], r[3], r[4], r[5], r[6].isoformat(timespec="microseconds"), seq)
        for seq, r in enumerate(rows, first)
    ]


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
            bumped = conn.execute(bump_sql(len(rows))).fetchone()
            result = check_last_seq(None if bumped is None else bumped[0])
            conn.executemany(sql, text_rows(rows, result))
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
        self._sql = db.backend.insert_sql(self._dialect)
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

    async def insert(self, rows: Sequence[Row]) -> None:
        inline = self._try_inline(rows) if len(rows) <= INLINE_MAX_ROWS else None
        if inline is None:  # too large, or another process holds the write lock
            await self._on_thread(self._sql, rows)
        self._rows_since_checkpoint += len(rows)
        if self._rows_since_checkpoint >= CHECKPOINT_EVERY_ROWS:
            self._checkpoint_soon()

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
