"""The one way the logger borrows a connection from its engine.

An in-memory SQLite database is a single shared connection (StaticPool). Two
tasks using it at once would share one transaction, and one task returning
the connection to the pool would roll back the other's writes, so for that
engine every use is serialised by a lock. Other engines hand each user its own
pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

__all__ = ["Database"]


class Database:
    """An :class:`AsyncEngine` plus the access discipline its pool needs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # True when every checkout is the same connection (in-memory SQLite).
        self.shared_connection = isinstance(engine.pool, StaticPool)
        self._lock: asyncio.Lock | None = asyncio.Lock() if self.shared_connection else None

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autocommit-free; rolled back on return)."""
        async with AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            yield await stack.enter_async_context(self.engine.connect())

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction committed on success, rolled back on error."""
        async with AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            yield await stack.enter_async_context(self.engine.begin())
