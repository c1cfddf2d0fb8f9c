"""The PostgreSQL sink's calls through asyncpg (see ``_sink`` for what they make up).

A batch's ``COPY`` goes in asyncpg's binary format (``copy_records_to_table``),
a streamed one as text (``_copy`` says why).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncConnection

from ..._schema import EVENT_TABLE
from ._copy import COPY_COLUMNS
from ._sink import CONNECTION_ERRORS, SESSION_ENDED, PostgresSink

if TYPE_CHECKING:
    from ..._models import Row

__all__ = ["AsyncpgSink", "lost_connection"]


class AsyncpgSink(PostgresSink):
    """:class:`PostgresSink` on an asyncpg connection (which runs each call to its end)."""

    async def _prepare(self, conn: AsyncConnection) -> None:
        pass  # asyncpg outside a transaction block commits each statement on its own

    def _is_closed(self, driver: Any) -> bool:
        return bool(driver.is_closed())

    def _in_transaction(self, driver: Any) -> bool:
        return bool(driver.is_in_transaction())

    def _is_idle(self, driver: Any) -> bool:
        return not driver.is_in_transaction()

    def _terminate(self, driver: Any) -> None:
        driver.terminate()

    async def _command(self, driver: Any, sql: str) -> None:
        await driver.execute(sql)

    async def _execute(self, driver: Any, sql: str, *args: Any) -> None:
        await driver.execute(sql, *args)

    async def _value(self, driver: Any, sql: str, *args: Any) -> Any:
        return await driver.fetchval(sql, *args)

    async def _copy(self, driver: Any, rows: Sequence[Row]) -> None:
        await driver.copy_records_to_table(EVENT_TABLE.name, records=rows, columns=COPY_COLUMNS)

    async def _copy_stream(self, driver: Any, lines: AsyncIterator[bytes]) -> None:
        await driver.copy_to_table(
            EVENT_TABLE.name, source=lines, columns=COPY_COLUMNS, format="text"
        )

    def _lost(self, exc: BaseException) -> bool:
        return lost_connection(exc)


def lost_connection(exc: BaseException) -> bool:
    """True for a failure of the connection itself (not of the statement).

    asyncpg says so in several ways: ``ConnectionDoesNotExistError`` (class 08),
    ``InterfaceError`` ("connection is closed"), the server's goodbye
    (``AdminShutdownError``, 57P01, from ``pg_terminate_backend``), a socket's
    ``OSError``, and ``InternalClientError`` ("cannot switch to state 12;
    another operation (2) is in progress"): a connection whose server said
    goodbye while it was idle fails its next call on the protocol's state
    machine before it notices the socket closed. Its protocol is then stuck,
    so the connection is as good as lost.
    """
    if isinstance(
        exc,
        (
            *CONNECTION_ERRORS,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            asyncpg.PostgresConnectionError,
        ),
    ):
        return True
    return getattr(exc, "sqlstate", None) in SESSION_ENDED
