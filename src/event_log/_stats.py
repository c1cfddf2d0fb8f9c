"""``table_stats``: how big the event log is, how old, what it holds, what it could free.

What ``event-log stats`` shows. Sizes come from each database's own
accounting: the file and its WAL for SQLite, ``pg_total_relation_size`` of the
table (its partitions' sum when partitioned) and the sequence table for
PostgreSQL, ``information_schema`` for MariaDB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ._errors import translate_storage_errors
from ._schema import EVENT_TABLE
from .backends import backend_for_url

__all__ = ["TableStats", "table_stats"]

_c = EVENT_TABLE.c
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
    "FROM pg_partition_tree('event_log')), pg_total_relation_size('event_log')) "
    "+ pg_total_relation_size('event_log_sequence')"
)
_MARIADB_SIZE = text(
    "SELECT SUM(data_length + index_length) FROM information_schema.tables "
    "WHERE table_schema = DATABASE() "
    "AND table_name IN ('event_log', 'event_log_sequence')"
)


@dataclass(frozen=True, slots=True)
class TableStats:
    """The event log's size and contents.

    ``rows``, ``oldest``/``newest`` (None when empty), ``by_type`` (counts,
    largest first), ``size_bytes`` (None when unknown) and ``size_of`` (what
    was measured). SQLite adds ``reclaimable_bytes`` (its free pages) and
    ``auto_vacuum`` ("none", "full" or "incremental"); PostgreSQL adds
    ``dead_rows``; MariaDB has none of these.
    """

    rows: int
    oldest: datetime | None
    newest: datetime | None
    size_bytes: int | None
    size_of: str
    by_type: dict[str, int] = field(default_factory=dict)
    reclaimable_bytes: int | None = None
    auto_vacuum: str | None = None
    dead_rows: int | None = None


def _file_size(name: str) -> int:
    path = Path(name).expanduser()
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(os.path.getsize(f) for f in files if f.is_file())


async def table_stats(engine: AsyncEngine) -> TableStats:
    """Row count, time range, counts by type and size on disk of the event log."""
    backend = backend_for_url(engine.url)
    extra: dict[str, Any] = {}
    size: Any = None
    size_of = ""
    with translate_storage_errors("reading statistics"):
        async with engine.connect() as conn:
            rows, oldest, newest = (
                await conn.execute(
                    select(func.count(), func.min(_c.timestamp), func.max(_c.timestamp))
                )
            ).one()
            grouped = select(_c.event_type, func.count()).group_by(_c.event_type)
            by_type = {str(t): int(n) for t, n in await conn.execute(grouped)}
            if backend.name == "sqlite":
                free = int((await conn.exec_driver_sql("PRAGMA freelist_count")).scalar() or 0)
                page = int((await conn.exec_driver_sql("PRAGMA page_size")).scalar() or 0)
                mode = int((await conn.exec_driver_sql("PRAGMA auto_vacuum")).scalar() or 0)
                extra = {
                    "reclaimable_bytes": free * page,
                    "auto_vacuum": _AUTO_VACUUM.get(mode, "none"),
                }
            elif backend.name == "postgresql":
                dead = await conn.scalar(_PG_DEAD_ROWS)
                extra = {"dead_rows": None if dead is None else int(dead)}
                size, size_of = await conn.scalar(_PG_SIZE), "tables and indexes"
            else:
                size, size_of = await conn.scalar(_MARIADB_SIZE), "tables and indexes"
    path = backend.file_path(engine.url)
    if path:
        size, size_of = _file_size(path), "database file and WAL"
    return TableStats(
        rows=int(rows),
        oldest=oldest,
        newest=newest,
        size_bytes=None if size is None else int(size),
        size_of=size_of,
        by_type=dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        **extra,
    )
