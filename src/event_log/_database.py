"""The one way the logger borrows a connection from its engine.

An in-memory SQLite database is a single shared connection (StaticPool). Two
tasks using it at once would share one transaction, and one task returning
the connection to the pool would roll back the other's writes, so for that
engine every use is serialised by a lock. Other engines hand each user its own
pooled connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import StaticPool

from .backends import Backend, backend_for_url

__all__ = ["Database"]


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a shielded task's outcome as seen: its caller may have stopped waiting."""
    if not task.cancelled():
        task.exception()


class Database:
    """An :class:`AsyncEngine` plus the access discipline its pool needs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # What the database does its own way (see backends).
        self.backend: Backend = backend_for_url(engine.url)
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

    async def rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> list[Sequence[Any]]:
        """Every row ``statement`` returns (a read), with ``params`` for its bind
        parameters (a statement built once and run many times, see ``_follow``)."""
        if self._lock is None:
            return await self._rows(statement, params)
        # One shared connection: a query cancelled halfway would make SQLAlchemy
        # discard that connection, and the in-memory database with it. The query
        # runs to its end in its own task; only the caller stops waiting.
        task = asyncio.ensure_future(self._rows(statement, params))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _rows(
        self, statement: Executable, params: Mapping[str, Any] | None
    ) -> list[Sequence[Any]]:
        async with self.connect() as conn:
            return list((await conn.execute(statement, params)).all())

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction committed on success, rolled back on error."""
        async with AsyncExitStack() as stack:
            if self._lock is not None:
                await stack.enter_async_context(self._lock)
            yield await stack.enter_async_context(self.engine.begin())
