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

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .._backend import IndexOutcome

__all__ = ["DATA_INDEX_NAME", "create_gin_index", "is_optional_index"]

DATA_INDEX_NAME = "ix_event_log_data_gin"

_VALID = text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)")
_DROP = text(f"DROP INDEX CONCURRENTLY IF EXISTS {DATA_INDEX_NAME}")
_METHOD = "USING gin (data jsonb_path_ops)"
_PARTITIONED = text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass('event_log')")
_CHILDREN = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "WHERE i.inhparent = to_regclass('event_log') ORDER BY c.relname"
)
_ATTACHED = text(
    "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(:name) "
    f"AND inhparent = to_regclass('{DATA_INDEX_NAME}')"
)


def is_optional_index(name: str | None) -> bool:
    """Whether an index found in the database is one the model leaves out on purpose."""
    return name == DATA_INDEX_NAME


async def _build_concurrently(
    connection: AsyncConnection, name: str, table: str, *, drop: TextClause | None = None
) -> None:
    """Build index ``name`` on ``table`` unless a valid one exists."""
    valid = (await connection.execute(_VALID, {"name": name})).scalar()
    if valid:
        return
    if valid is not None:
        # An interrupted concurrent build leaves an invalid index that IF NOT
        # EXISTS would keep: drop it and build again.
        await connection.execute(
            drop if drop is not None else text(f'DROP INDEX CONCURRENTLY "{name}"')
        )
    await connection.execute(
        text(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" {_METHOD}')
    )


async def _create_partitioned(connection: AsyncConnection) -> None:
    """A partitioned table cannot be indexed concurrently as a whole.

    PostgreSQL's way: an index on the parent alone (invalid at first), one
    built concurrently on each partition and attached to it; the parent's index
    turns valid when every partition's is attached. Partitions attached later
    get theirs from PostgreSQL itself.
    """
    await connection.execute(
        text(f"CREATE INDEX IF NOT EXISTS {DATA_INDEX_NAME} ON ONLY event_log {_METHOD}")
    )
    children = (await connection.execute(_CHILDREN)).scalars().all()
    for child in children:
        name = f"{child}_data_gin"[:63]
        await _build_concurrently(connection, name, child)
        attached = (await connection.execute(_ATTACHED, {"name": name})).scalar()
        if not attached:
            await connection.execute(
                text(f'ALTER INDEX {DATA_INDEX_NAME} ATTACH PARTITION "{name}"')
            )


async def create_gin_index(engine: AsyncEngine) -> IndexOutcome:
    """Build the GIN index on ``event_log.data`` unless a valid one exists."""
    async with engine.connect() as connection:
        # CONCURRENTLY cannot run inside a transaction block.
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        valid = (await connection.execute(_VALID, {"name": DATA_INDEX_NAME})).scalar()
        if valid:
            return "exists"
        if (await connection.execute(_PARTITIONED)).scalar():
            await _create_partitioned(connection)
        else:
            await _build_concurrently(connection, DATA_INDEX_NAME, "event_log", drop=_DROP)
    return "created"
