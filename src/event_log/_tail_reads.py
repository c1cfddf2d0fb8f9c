"""The connection followers read on: held, in autocommit, shared by a logger's followers.

A follower reads again after every wake-up, many times a second under load.
Through the pool each read would check a connection out, ping it, begin a
transaction and roll it back: four round trips and most of the read's CPU.
Where the backend says it pays (``Backend.holds_follow_connection``), the
logger's followers share one connection instead, in autocommit, one read at
a time. A read that fails drops it (its state is unknown); the next read
takes a new one from the pool, whose pre-ping replaces a dead connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from ._database import Database

__all__ = ["TailReads"]


class TailReads:
    """Reads for a logger's followers (see the module)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._held = db.backend.holds_follow_connection and not db.shared_connection
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        """Every row ``statement`` returns, with ``params``."""
        if not self._held:
            return await self._db.rows(statement, params)
        async with self._lock:
            conn = self._conn
            if conn is None:
                conn = await self._db.engine.connect()
                try:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                except BaseException:
                    await conn.close()
                    raise
                self._conn = conn
            try:
                return list((await conn.execute(statement, params)).all())
            except BaseException:
                await self._drop()
                raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        """Give the connection back to the pool."""
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()
