"""Engines: the database URL's resolution, and an engine made by the URL's backend.

Nothing here runs at import time; engines are made by :func:`create_engine`
when a logger is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from ._errors import StorageError, translate_storage_errors
from .backends import backend_for_url

__all__ = ["DEFAULT_URL", "ENV_URL", "check_connection", "create_engine", "resolve_url"]

DEFAULT_URL = "sqlite+aiosqlite:///data/events.db"
ENV_URL = "EVENT_LOG_URL"


def resolve_url(url: str | URL | None, environ: Mapping[str, str] | None = None) -> URL:
    """Explicit argument, then ``$EVENT_LOG_URL``, then :data:`DEFAULT_URL`."""
    if url is None:
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL) or DEFAULT_URL
    return make_url(url)


def create_engine(url: URL, *, read_only: bool = False, **engine_kwargs: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` tuned for an append-heavy event log on ``url``'s backend.

    A writer's file database gets its folder made; a ``read_only`` engine's
    database must exist (:class:`StorageError` otherwise), and it refuses writes
    (an in-memory database, new and private to its engine, is left as it is).
    """
    backend = backend_for_url(url)
    if backend.is_memory(url):
        # The logger's own database, new and empty: there is nothing to protect.
        read_only = False
    if not read_only:
        backend.prepare_path(url)
    else:
        path = backend.file_path(url)
        if path is not None and not Path(path).expanduser().is_file():
            raise StorageError(f"no database file at {path}: a read-only logger never creates one")
    return backend.create_engine(url, read_only=read_only, **engine_kwargs)


async def check_connection(engine: AsyncEngine) -> None:
    """Connect once, so an unreachable or refusing database fails here, in one
    :class:`StorageError`, before a logger starts anything in the background."""
    with translate_storage_errors("connecting to the database"):
        async with engine.connect():
            pass
