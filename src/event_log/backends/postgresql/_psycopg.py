"""PostgreSQL through psycopg 3: the sink's calls (see ``_sink``) and the LISTEN connection.

Both use a connection of the engine's pool, so they connect with the engine's
URL, options and adapters, switched to autocommit (SQLAlchemy switches it
back when the connection returns to the pool): a one-statement batch is then
its own transaction, with no ``BEGIN`` round trip before it, and a LISTEN
connection hears every commit at once. The sink's statements go through raw
cursors, whose placeholders (``$1``) are the server's own, so the SQL is the
one the asyncpg sink sends. Its ``COPY`` is text (``_copy``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from sqlalchemy.ext.asyncio import AsyncConnection

from ..._schema import EVENT_TABLE
from ._copy import COPY_COLUMNS, copy_text
from ._listen import ReopeningListener
from ._sink import CONNECTION_ERRORS, SESSION_ENDED, PostgresSink

if TYPE_CHECKING:
    from ..._database import Database
    from ..._models import Row

__all__ = ["PsycopgListener", "PsycopgSink", "listen", "lost_connection"]


_COPY_SQL = f"COPY {EVENT_TABLE.name} ({', '.join(COPY_COLUMNS)}) FROM STDIN"
# A large batch goes to COPY in pieces of this many rows, so the server stores
# the first ones while the rest are formatted.
_COPY_PIECE = 1000


async def _autocommit(conn: AsyncConnection) -> psycopg.AsyncConnection[Any]:
    """``conn``'s psycopg connection, in autocommit until it returns to the pool."""
    await conn.execution_options(isolation_level="AUTOCOMMIT")
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    return driver


class PsycopgSink(PostgresSink):
    """:class:`PostgresSink` on a psycopg ``AsyncConnection`` in autocommit."""

    async def _prepare(self, conn: AsyncConnection) -> None:
        await _autocommit(conn)

    def _is_closed(self, driver: Any) -> bool:
        return bool(driver.closed or driver.broken)

    def _in_transaction(self, driver: Any) -> bool:
        status = driver.info.transaction_status
        return bool(status in (TransactionStatus.INTRANS, TransactionStatus.INERROR))

    def _is_idle(self, driver: Any) -> bool:
        return bool(driver.info.transaction_status == TransactionStatus.IDLE)

    def _terminate(self, driver: Any) -> None:
        driver.pgconn.finish()  # closes the socket now, whatever is under way

    async def _command(self, driver: Any, sql: str) -> None:
        await driver.execute(sql, prepare=False)

    async def _execute(self, driver: Any, sql: str, *args: Any) -> None:
        async with psycopg.AsyncRawCursor(driver) as cursor:
            await cursor.execute(sql, args)

    async def _value(self, driver: Any, sql: str, *args: Any) -> Any:
        async with psycopg.AsyncRawCursor(driver, row_factory=tuple_row) as cursor:
            await cursor.execute(sql, args)
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def _copy(self, driver: Any, rows: Sequence[Row]) -> None:
        async with (
            psycopg.AsyncRawCursor(driver) as cursor,
            cursor.copy(_COPY_SQL) as copy,
        ):
            for start in range(0, len(rows), _COPY_PIECE):
                piece = rows[start : start + _COPY_PIECE]
                await copy.write(copy_text(piece))

    async def _copy_stream(self, driver: Any, lines: AsyncIterator[bytes]) -> None:
        async with (
            psycopg.AsyncRawCursor(driver) as cursor,
            cursor.copy(_COPY_SQL) as copy,
        ):
            async for line in lines:
                await copy.write(line)

    def _lost(self, exc: BaseException) -> bool:
        return lost_connection(exc)


def lost_connection(exc: BaseException) -> bool:
    """True for a failure of the connection itself (not of the statement).

    psycopg raises ``OperationalError`` for both: a lost connection has no
    SQLSTATE (the client noticed), or a connection-exception one (class 08),
    or says the server ended the session.
    """
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in SESSION_ENDED


class PsycopgListener(ReopeningListener):
    """psycopg: a connection in autocommit doing ``LISTEN``, read by the listener's task
    (see ``_listen`` for the reopening)."""

    def __init__(self, db: Database, channel: str, wake: Callable[..., None]) -> None:
        super().__init__(db, channel, wake)
        self._driver: psycopg.AsyncConnection[Any] | None = None

    async def _listen(self, conn: AsyncConnection) -> None:
        driver = await _autocommit(conn)
        await driver.execute(f"LISTEN {self._channel}", prepare=False)
        self._driver = driver

    async def _until_lost(self) -> None:
        assert self._driver is not None
        # Ends only by raising: psycopg finds the connection lost while it waits.
        async for _ in self._driver.notifies():
            self._wake()

    async def _unlisten(self) -> None:
        assert self._driver is not None
        await self._driver.execute(f"UNLISTEN {self._channel}", prepare=False)


async def listen(db: Database, channel: str, wake: Callable[..., None]) -> PsycopgListener:
    """Call ``wake`` on every notification on ``channel``, from a connection of ``db``'s."""
    listener = PsycopgListener(db, channel, wake)
    await listener.start()
    return listener
