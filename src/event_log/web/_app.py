"""A whole app around the router, and ``serve()``, which runs it with uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from event_log import EventLogger

from ._router import DEFAULT_HEARTBEAT, create_router

__all__ = ["create_app", "serve"]

# Seconds uvicorn waits for open SSE streams on shutdown before cancelling them:
# a stream never ends by itself, so without a bound a shutdown would hang.
_GRACEFUL_SHUTDOWN = 3


def create_app(
    url: str | None = None, *, heartbeat: float = DEFAULT_HEARTBEAT, **options: Any
) -> FastAPI:
    """A FastAPI app serving the router at ``/`` over a logger it opens in its lifespan.

    ``url`` falls back to ``$EVENT_LOG_URL``, then the default SQLite file, as in
    ``EventLogger.open()``, which receives ``options`` too. Nothing is opened
    until the server starts the app.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with EventLogger.open(url, **options) as log:
            # The router needs the open logger, which exists only from here on;
            # its routes leave again on shutdown, so a restarted app starts clean.
            before = list(app.router.routes)
            app.include_router(create_router(log, heartbeat=heartbeat))
            app.openapi_schema = None
            try:
                yield
            finally:
                app.router.routes[:] = before
                app.openapi_schema = None

    return FastAPI(
        title="event-log",
        summary="The swarm's audit trail: query, summarise and follow events.",
        version=_version(),
        lifespan=lifespan,
    )


def serve(url: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run :func:`create_app` with uvicorn until interrupted (``event-log serve``)."""
    import uvicorn

    uvicorn.run(
        create_app(url),
        host=host,
        port=port,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        log_level="info",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("event-log")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0+unknown"
