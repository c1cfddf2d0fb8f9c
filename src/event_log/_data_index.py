"""The optional index that serves ``data_contains``, built on demand.

Optional, so not an Alembic revision: a revision would give every database at
that revision the index, and the history is linear. Only PostgreSQL has one
(a GIN index, see ``backends.postgresql``); elsewhere nothing is built.
"""

from __future__ import annotations

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import create_engine, resolve_url
from ._errors import translate_storage_errors
from .backends import IndexOutcome, backend_for_url

__all__ = ["create_data_index"]


async def create_data_index(url_or_engine: str | URL | AsyncEngine | None = None) -> IndexOutcome:
    """Build the index that serves ``data_contains`` if it is missing.

    ``"created"`` or ``"exists"`` on PostgreSQL (a GIN index, built without
    blocking writers); ``"unsupported"`` on SQLite and MariaDB, where nothing is
    built. ``url_or_engine`` as for :func:`event_log.upgrade`; a database failure
    raises :class:`~event_log.StorageError`.
    """
    with translate_storage_errors("building the data index"):
        if isinstance(url_or_engine, AsyncEngine):
            return await backend_for_url(url_or_engine.url).create_data_index(url_or_engine)
        engine = create_engine(resolve_url(url_or_engine))
        try:
            return await backend_for_url(engine.url).create_data_index(engine)
        finally:
            await engine.dispose()
