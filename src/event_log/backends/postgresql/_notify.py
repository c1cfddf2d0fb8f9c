"""The wake-up other processes' followers get: a NOTIFY after commits, coalesced.

PostgreSQL commits transactions that sent a NOTIFY one at a time: each takes
a lock on the server's notification queue for its commit. A NOTIFY inside
every write transaction would make all writers of the server take turns
again. So writes send none; after a commit the sink pokes this notifier, which
sends ``pg_notify`` on a connection of its own, in a transaction of its own,
at once when it has been quiet, then at most once every
``NOTIFY_INTERVAL`` seconds while commits keep coming. A follower woken reads
everything committed by then, so one wake-up covers every commit before it.

A NOTIFY that fails costs no event: followers also poll. The connection is
then replaced on the next poke. The NOTIFY is sent by a task on the logger's
event loop: a caller that blocks that loop after its write (a blocking read
of stdin, say) holds it back until the loop runs again; closing the logger
sends whatever is still due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from ..._database import Database

__all__ = ["NOTIFY_INTERVAL", "CommitNotifier"]

# The shortest time between two notifications of one logger.
NOTIFY_INTERVAL = 0.01

_log = logging.getLogger("event_log")


class CommitNotifier:
    """One logger's NOTIFY sender (see the module)."""

    def __init__(self, db: Database, channel: str) -> None:
        self._db = db
        self._sql = f"SELECT pg_notify('{channel}', '')"
        self._conn: AsyncConnection | None = None
        self._driver: Any = None  # the driver's connection under self._conn
        self._due = asyncio.Event()  # a commit since the last NOTIFY began
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def poke(self) -> None:
        """Some rows were committed: notify soon (called on the event loop)."""
        if self._closed:
            return
        self._due.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            try:
                await self._send()
            except BaseException:
                self._due.set()  # cancelled halfway: close() sends it
                raise
            await asyncio.sleep(NOTIFY_INTERVAL)

    async def _send(self) -> None:
        try:
            if self._driver is None:
                conn = await self._db.engine.connect()
                try:
                    # Autocommit: each NOTIFY its own transaction, sent at once.
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    driver = (await conn.get_raw_connection()).driver_connection
                except BaseException:
                    await conn.close()
                    raise
                self._conn, self._driver = conn, driver
            # asyncpg's and psycopg's connections both take a statement this way
            # (SQLAlchemy's own execute would cost several times the NOTIFY).
            await self._driver.execute(self._sql)
        except Exception as exc:
            _log.debug("event_log: NOTIFY failed (%s); followers poll meanwhile", exc)
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Send what is still due, then stop and release the connection."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            if self._due.is_set():
                self._due.clear()
                await self._send()
        finally:
            await self._drop_quietly()

    async def _drop_quietly(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
