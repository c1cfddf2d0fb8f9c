"""What the web tests share: the router in an app of its own, and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from event_log import EventLogger
from event_log.web import create_router

__all__ = ["app_client", "make_app"]


def make_app(log: EventLogger, **options: Any) -> FastAPI:
    """The router over ``log`` (with a short SSE heartbeat), mounted at the root."""
    app = FastAPI()
    app.include_router(create_router(log, heartbeat=0.2, **options))
    return app


@asynccontextmanager
async def app_client(log: EventLogger) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to :func:`make_app` in process."""
    transport = httpx.ASGITransport(app=make_app(log))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
