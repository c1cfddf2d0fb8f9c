"""LISTEN for the NOTIFY every write transaction's commit sends (asyncpg)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from .._backend import Listener

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from ..._database import Database

__all__ = ["NotifyListener", "listen"]


class NotifyListener(Listener):
    """One connection of the engine's pool, held while followers want wake-ups."""

    def __init__(self, conn: AsyncConnection, channel: str, wake: Callable[..., None]) -> None:
        self._conn = conn
        self._channel = channel
        self._wake = wake

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # the connection may be gone already
            driver = (await self._conn.get_raw_connection()).driver_connection
            assert driver is not None
            await driver.remove_listener(self._channel, self._wake)
        await self._conn.close()


async def listen(db: Database, channel: str, wake: Callable[..., None]) -> NotifyListener:
    """Call ``wake`` on every notification on ``channel``, from a connection of ``db``'s."""
    conn = await db.engine.connect()
    try:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.add_listener(channel, wake)
    except BaseException:
        await conn.close()
        raise
    return NotifyListener(conn, channel, wake)
