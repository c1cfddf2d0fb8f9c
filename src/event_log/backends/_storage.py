"""What each database says about the event log's storage (``event-log stats``).

Sizes come from each database's own accounting: ``pg_total_relation_size``
of the table (its partitions' sum when partitioned) and the sequence table on
PostgreSQL, ``information_schema`` on MariaDB; an SQLite file's size is read
from the file itself by the caller (``Backend.file_path``). SQLite adds its
free pages and auto-vacuum mode, PostgreSQL its dead rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from ._backend import Backend

__all__ = ["Storage", "storage"]

_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}
_PG_DEAD_ROWS = text(
    "SELECT coalesce((SELECT sum(s.n_dead_tup) "
    "FROM pg_partition_tree('event_log') t "
    "JOIN pg_stat_user_tables s ON s.relid = t.relid), "
    "(SELECT n_dead_tup FROM pg_stat_user_tables "
    "WHERE relname = 'event_log' AND schemaname = current_schema()))"
)
# A partitioned table has no storage of its own: its partitions' sum
# (pg_partition_tree lists nothing for a plain table).
_PG_SIZE = text(
    "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) "
    "FROM pg_partition_tree('event_log')), pg_total_relation_size('event_log'))"
)
_MARIADB_SIZE = text(
    "SELECT SUM(data_length + index_length) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() "
    "AND table_name IN ('event_log', 'event_log_sequence')"
)


@dataclass(frozen=True, slots=True)
class Storage:
    """Sizes a database reports; None where it has no such figure."""

    size_bytes: int | None = None
    size_of: str = ""
    reclaimable_bytes: int | None = None
    auto_vacuum: str | None = None
    dead_rows: int | None = None


async def storage(backend: Backend, conn: AsyncConnection) -> Storage:
    """The event log's storage as ``backend``'s database accounts for it, read on ``conn``."""
    if backend.name == "sqlite":
        free = int((await conn.exec_driver_sql("PRAGMA freelist_count")).scalar() or 0)
        page = int((await conn.exec_driver_sql("PRAGMA page_size")).scalar() or 0)
        mode = int((await conn.exec_driver_sql("PRAGMA auto_vacuum")).scalar() or 0)
        return Storage(reclaimable_bytes=free * page, auto_vacuum=_AUTO_VACUUM.get(mode, "none"))
    query = _PG_SIZE if backend.name == "postgresql" else _MARIADB_SIZE
    size = await conn.scalar(query)
    dead = await conn.scalar(_PG_DEAD_ROWS) if backend.name == "postgresql" else None
    return Storage(
        size_bytes=None if size is None else int(size),
        size_of="tables and indexes",
        dead_rows=None if dead is None else int(dead),
    )
