"""The command line's SQL: inserting imported events as they were, and ``stats``.

(Reading the original system's SQLite files is in ``_legacy``.)

Importing keeps each event's id and timestamp, which the public API never
allows (the logger makes ids), so it writes through the logger's engine here,
the way the logger's own sink does: one transaction reserves sequence numbers
from ``event_log_sequence`` (its row lock numbers rows in commit order, which
``follow()`` relies on) and inserts with ``ON CONFLICT (id) DO NOTHING`` (on
MariaDB ``ON DUPLICATE KEY UPDATE id = id``), so importing the same events twice
adds nothing. A skipped row leaves a gap in
the sequence, which is harmless: followers only need the order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from event_log._engine import backend_name
from event_log._models import Row
from event_log._partition import partitioning
from event_log._schema import EventRecord
from event_log._sinks import _numbered_rows, reserve_seq

from ._runtime import sqlite_path

__all__ = ["TableStats", "insert_rows", "table_stats"]

_table = cast(Table, EventRecord.__table__)
_c = _table.c


def _insert_sql(engine: AsyncEngine, *, partitioned: bool = False) -> str:
    dialect = engine.dialect
    if backend_name(dialect.name) == "mysql":
        # A no-op update of the key: a duplicate id is skipped, other errors still raise.
        on_mysql = mysql.insert(_table).on_duplicate_key_update(id=_c.id)
        return str(on_mysql.compile(dialect=dialect))
    insert = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
    if partitioned:
        # The primary key is (id, timestamp) there (see event_log._partition):
        # no conflict target on id alone; stored ids are filtered out first.
        stmt = insert(_table).on_conflict_do_nothing()
    else:
        stmt = insert(_table).on_conflict_do_nothing(index_elements=[_c.id])
    return str(stmt.compile(dialect=dialect))


async def _new_rows(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """``rows`` without ids already stored or repeated in ``rows`` (first one kept)."""
    ids = list({row[0] for row in rows})
    stored = set((await conn.execute(select(_c.id).where(_c.id.in_(ids)))).scalars())
    fresh: list[Row] = []
    for row in rows:
        if row[0] not in stored:
            stored.add(row[0])
            fresh.append(row)
    return fresh


async def insert_rows(engine: AsyncEngine, rows: Sequence[Row]) -> int:
    """Insert validated rows with their own ids in one transaction; return how many were
    new (rows whose id is already stored are skipped)."""
    if not rows:
        return 0
    backend = backend_name(engine.dialect.name)
    async with engine.begin() as conn:
        partitioned = await conn.run_sync(partitioning) is not None
        if partitioned:
            rows = await _new_rows(conn, rows)
            if not rows:
                return 0
        # On PostgreSQL this also queues the commit's NOTIFY, so followers in other
        # processes see the imported events at once.
        last_seq = await reserve_seq(conn, len(rows))
        params = _numbered_rows(
            rows, last_seq, sqlite=backend == "sqlite", naive_utc=backend == "mysql"
        )
        await conn.exec_driver_sql(_insert_sql(engine, partitioned=partitioned), params)
        # The reserved numbers are ours alone until the commit: those in use are
        # exactly the rows this statement inserted.
        first = last_seq - len(rows) + 1
        inserted = await conn.scalar(
            select(func.count()).select_from(_table).where(_c.seq.between(first, last_seq))
        )
    return int(inserted or 0)


_AUTO_VACUUM = {0: "none", 1: "full", 2: "incremental"}


def _sqlite_size(path: Path) -> int:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(os.path.getsize(f) for f in files if f.is_file())


@dataclass(frozen=True, slots=True)
class TableStats:
    rows: int
    oldest: datetime | None
    newest: datetime | None
    size_bytes: int | None
    size_of: str
    by_type: dict[str, int] = field(default_factory=dict)
    # SQLite: the free pages' bytes (freelist_count x page_size) and the auto_vacuum
    # mode ("none", "full" or "incremental"); PostgreSQL: dead rows of event_log;
    # MariaDB: none of these.
    reclaimable_bytes: int | None = None
    auto_vacuum: str | None = None
    dead_rows: int | None = None


async def table_stats(engine: AsyncEngine) -> TableStats:
    """Row count, time range, counts by type and size on disk of the event log."""
    async with engine.connect() as conn:
        rows, oldest, newest = (
            await conn.execute(select(func.count(), func.min(_c.timestamp), func.max(_c.timestamp)))
        ).one()
        by_type = {
            str(t): int(n)
            for t, n in await conn.execute(
                select(_c.event_type, func.count()).group_by(_c.event_type)
            )
        }
        size: Any = None
        size_of = ""
        reclaimable: int | None = None
        auto_vacuum: str | None = None
        dead_rows: int | None = None
        if engine.dialect.name == "sqlite":
            free = await conn.exec_driver_sql("PRAGMA freelist_count")
            free_pages = int(free.scalar() or 0)
            page = await conn.exec_driver_sql("PRAGMA page_size")
            reclaimable = free_pages * int(page.scalar() or 0)
            mode = await conn.exec_driver_sql("PRAGMA auto_vacuum")
            auto_vacuum = _AUTO_VACUUM.get(int(mode.scalar() or 0), "none")
        if engine.dialect.name == "postgresql":
            # A partitioned table has no storage of its own: its partitions' sum
            # (pg_partition_tree lists nothing for a plain table).
            dead = await conn.scalar(
                text(
                    "SELECT coalesce((SELECT sum(s.n_dead_tup) "
                    "FROM pg_partition_tree('event_log') t "
                    "JOIN pg_stat_user_tables s ON s.relid = t.relid), "
                    "(SELECT n_dead_tup FROM pg_stat_user_tables "
                    "WHERE relname = 'event_log' AND schemaname = current_schema()))"
                )
            )
            dead_rows = None if dead is None else int(dead)
            size = await conn.scalar(
                text(
                    "SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) "
                    "FROM pg_partition_tree('event_log')), pg_total_relation_size('event_log')) "
                    "+ pg_total_relation_size('event_log_sequence')"
                )
            )
            size_of = "tables and indexes"
        if backend_name(engine.dialect.name) == "mysql":
            size = await conn.scalar(
                text(
                    "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() "
                    "AND table_name IN ('event_log', 'event_log_sequence')"
                )
            )
            size_of = "tables and indexes"
    path = sqlite_path(engine.url)
    if path is not None:
        size = _sqlite_size(path)
        size_of = "database file and WAL"
    by_type = dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])))
    return TableStats(
        rows=int(rows),
        oldest=oldest,
        newest=newest,
        size_bytes=None if size is None else int(size),
        size_of=size_of,
        by_type=by_type,
        reclaimable_bytes=reclaimable,
        auto_vacuum=auto_vacuum,
        dead_rows=dead_rows,
    )
