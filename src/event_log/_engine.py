"""Engines: the database URL's resolution, and an engine made by the URL's backend.

Nothing here runs at import time; engines are made by :func:`create_engine`
when a logger is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from .backends import backend_for_url

__all__ = ["DEFAULT_URL", "ENV_URL", "create_engine", "resolve_url"]

DEFAULT_URL = "sqlite+aiosqlite:///data/events.db"
ENV_URL = "EVENT_LOG_URL"


def resolve_url(url: str | URL | None, environ: Mapping[str, str] | None = None) -> URL:
    """Explicit argument, then ``$EVENT_LOG_URL``, then :data:`DEFAULT_URL`."""
    if url is None:
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL) or DEFAULT_URL
    return make_url(url)


def create_engine(url: URL, **engine_kwargs: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` tuned for an append-heavy event log on ``url``'s backend."""
    backend = backend_for_url(url)
    backend.prepare_path(url)
    return backend.create_engine(url, **engine_kwargs)
