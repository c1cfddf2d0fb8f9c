"""``EventLogger.open()``: a logger that owns its engine, as a context manager or awaitable."""

from __future__ import annotations

import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL

from ._engine import check_connection, create_engine, resolve_url
from ._migrate import upgrade

if TYPE_CHECKING:
    from ._logger import EventLogger

__all__ = ["Opening"]


class Opening:
    """What ``EventLogger.open()`` returns: an async context manager, or an awaitable."""

    def __init__(
        self,
        cls: type[EventLogger],
        url: str | URL | None,
        migrate: bool,
        options: dict[str, Any],
    ) -> None:
        self._cls = cls
        self._url = url
        self._migrate = migrate
        self._options = options
        self._logger: EventLogger | None = None

    async def _open(self) -> EventLogger:
        read_only = bool(self._options.get("read_only", False))
        engine = create_engine(resolve_url(self._url), read_only=read_only)
        try:
            await check_connection(engine)
            if self._migrate and not read_only:
                await upgrade(engine)
            logger = self._cls(engine, **self._options)
        except BaseException:
            await engine.dispose()
            raise
        logger._owned_engine = engine
        if logger._upkeep.keeps_partitions:
            # A partitioned table has its partitions ahead before the first write.
            try:
                await logger._upkeep.partitions_checked.wait()
            except BaseException:
                await logger.close()
                raise
        return logger

    def __await__(self) -> Generator[Any, None, EventLogger]:
        return self._open().__await__()

    async def __aenter__(self) -> EventLogger:
        self._logger = await self._open()
        return self._logger

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        assert self._logger is not None
        await self._logger.close()
