"""The optional GIN index that serves ``data_contains`` on PostgreSQL.

Optional, so not an Alembic revision: a revision would give every database at
that revision the index, and the history is linear. It is built on demand
(``event-log db index-data`` or :func:`create_data_index`) with ``CREATE INDEX
CONCURRENTLY``, so writers are not blocked while it builds, and the migrations'
``db check`` ignores it (``env.py`` asks :func:`is_optional_index`).

``jsonb_path_ops`` indexes serve ``@>`` only (``data_where`` comparisons do not
use it), and are smaller and faster than the default ``jsonb_ops``. SQLite and
MariaDB have no index that serves containment: there is nothing to build there.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import create_engine, resolve_url
from ._errors import translate_storage_errors

__all__ = ["DATA_INDEX_NAME", "IndexOutcome", "create_data_index", "is_optional_index"]

DATA_INDEX_NAME = "ix_event_log_data_gin"
IndexOutcome = Literal["created", "exists", "unsupported"]

_VALID = text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)")
_DROP = text(f"DROP INDEX CONCURRENTLY IF EXISTS {DATA_INDEX_NAME}")
_CREATE = text(
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {DATA_INDEX_NAME} "
    "ON event_log USING gin (data jsonb_path_ops)"
)


def is_optional_index(name: str | None) -> bool:
    """Whether an index found in the database is one the model leaves out on purpose."""
    return name == DATA_INDEX_NAME


async def _create(engine: AsyncEngine) -> IndexOutcome:
    if engine.dialect.name != "postgresql":
        return "unsupported"
    async with engine.connect() as connection:
        # CONCURRENTLY cannot run inside a transaction block.
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        valid = (await connection.execute(_VALID, {"name": DATA_INDEX_NAME})).scalar()
        if valid:
            return "exists"
        if valid is not None:
            # An interrupted concurrent build leaves an invalid index that IF NOT
            # EXISTS would keep: drop it and build again.
            await connection.execute(_DROP)
        await connection.execute(_CREATE)
    return "created"


async def create_data_index(url_or_engine: str | URL | AsyncEngine | None = None) -> IndexOutcome:
    """Build the GIN index on ``event_log.data`` if it is missing (PostgreSQL).

    ``"created"`` or ``"exists"`` on PostgreSQL; ``"unsupported"`` on SQLite and
    MariaDB, where nothing is built. ``url_or_engine`` as for :func:`event_log.upgrade`;
    a database failure raises :class:`~event_log.StorageError`.
    """
    with translate_storage_errors("building the data index"):
        if isinstance(url_or_engine, AsyncEngine):
            return await _create(url_or_engine)
        engine = create_engine(resolve_url(url_or_engine))
        try:
            return await _create(engine)
        finally:
            await engine.dispose()
