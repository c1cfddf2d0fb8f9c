"""LISTEN for the NOTIFY every write transaction's commit sends, on a connection that is
reopened whenever it dies.

A LISTEN connection can be lost like any other (``pg_terminate_backend``, a
server restart, a network fault). Without it followers still poll, but only
every ``poll_interval``; so the listener reopens it, trying at once, then
after 0.05 s, doubling up to 5 s between tries, for as long as the logger
lives. Once it listens again it wakes every follower, which reads everything
committed after its position: commits whose NOTIFY was missed meanwhile are
found then. The asyncpg listener is here; psycopg's, on the same frame, in
``_psycopg``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..._errors import plain_reason
from .._backend import Listener

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from ..._database import Database

__all__ = [
    "REOPEN_FIRST_DELAY",
    "REOPEN_MAX_DELAY",
    "NotifyListener",
    "ReopeningListener",
    "listen",
]

_log = logging.getLogger("event_log")

# Between tries to reopen a lost LISTEN connection: the first try is at once,
# then this long, doubling up to REOPEN_MAX_DELAY.
REOPEN_FIRST_DELAY = 0.05
REOPEN_MAX_DELAY = 5.0


class ReopeningListener(Listener):
    """One connection of the engine's pool doing ``LISTEN``, held while followers want
    wake-ups, and a task that reopens it whenever it is lost (see the module)."""

    def __init__(self, db: Database, channel: str, wake: Callable[..., None]) -> None:
        self._db = db
        self._channel = channel
        self._wake = wake
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.reopened = 0  # how many times the connection was lost and reopened

    # -- the driver's part ----------------------------------------------------------------

    @abstractmethod
    async def _listen(self, conn: AsyncConnection) -> None:
        """Start listening on ``conn``, just checked out of the pool."""

    @abstractmethod
    async def _until_lost(self) -> None:
        """Deliver wake-ups until the connection is lost; return (or raise) then."""

    @abstractmethod
    async def _unlisten(self) -> None:
        """Stop listening on the connection, which is alive, so it can go back to the pool."""

    # -- shared ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the first connection (its failure is the caller's), then watch it."""
        await self._open()
        self._task = asyncio.create_task(self._run(), name=f"event_log LISTEN {self._channel}")

    async def _open(self) -> None:
        conn = await self._db.engine.connect()
        try:
            await self._listen(conn)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        self._conn = conn

    async def _run(self) -> None:
        while True:
            reason = "the server closed it"
            try:
                await self._until_lost()
            except Exception as exc:
                reason = plain_reason(exc)
            _log.warning(
                "event_log: lost the connection listening for commits on %r (%s); reopening "
                "it (followers poll meanwhile)",
                self._channel,
                reason,
            )
            await self._drop()
            await self._reopen()
            self.reopened += 1
            _log.info("event_log: listening for commits on %r again", self._channel)
            # Commits made while nobody listened sent NOTIFYs nobody heard: every
            # follower reads what was committed after its position now.
            self._wake()

    async def _reopen(self) -> None:
        delay = REOPEN_FIRST_DELAY
        warned = False
        while True:
            try:
                await self._open()
                return
            except Exception as exc:
                if not warned:
                    warned = True
                    _log.warning(
                        "event_log: cannot reopen the connection listening for commits on "
                        "%r yet (%s); trying again, up to every %g s",
                        self._channel,
                        plain_reason(exc),
                        REOPEN_MAX_DELAY,
                    )
            await asyncio.sleep(delay)
            delay = min(delay * 2, REOPEN_MAX_DELAY)

    async def _drop(self) -> None:
        """Give up a lost connection: the pool must not hand it out again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        conn, self._conn = self._conn, None
        if conn is None:
            return
        clean = False
        try:
            # Between notifications the connection is idle: it goes back to the pool,
            # listening to nothing, unless it was lost.
            with contextlib.suppress(Exception):
                await self._unlisten()
                clean = True
        finally:
            if not clean:
                with contextlib.suppress(Exception):
                    await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()


class NotifyListener(ReopeningListener):
    """asyncpg: its own listener callbacks, and its termination callback to tell a loss."""

    def __init__(self, db: Database, channel: str, wake: Callable[..., None]) -> None:
        super().__init__(db, channel, wake)
        self._driver: Any = None
        self._gone = asyncio.Event()
        self._on_gone: Callable[[Any], None] = lambda _conn: None

    async def _listen(self, conn: AsyncConnection) -> None:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        gone = asyncio.Event()  # this connection's own: a new one gets another

        def on_gone(_conn: Any) -> None:
            gone.set()

        driver.add_termination_listener(on_gone)
        await driver.add_listener(self._channel, self._wake)
        self._driver, self._gone, self._on_gone = driver, gone, on_gone

    async def _until_lost(self) -> None:
        await self._gone.wait()

    async def _unlisten(self) -> None:
        self._driver.remove_termination_listener(self._on_gone)
        await self._driver.remove_listener(self._channel, self._wake)


async def listen(db: Database, channel: str, wake: Callable[..., None]) -> NotifyListener:
    """Call ``wake`` on every notification on ``channel``, from a connection of ``db``'s."""
    listener = NotifyListener(db, channel, wake)
    await listener.start()
    return listener
