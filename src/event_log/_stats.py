"""``table_stats``: how big the event log is, how old, what it holds, what it could free.

What ``event-log stats`` shows. The counts are plain SQL; the sizes are each
database's own accounting (``backends._storage``), and an SQLite file's size is
the file's, with its WAL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ._errors import translate_storage_errors
from ._schema import EVENT_TABLE
from .backends import backend_for_url
from .backends._storage import storage

__all__ = ["TableStats", "table_stats"]

_c = EVENT_TABLE.c


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
    with translate_storage_errors("reading statistics"):
        async with engine.connect() as conn:
            rows, oldest, newest = (
                await conn.execute(
                    select(func.count(), func.min(_c.timestamp), func.max(_c.timestamp))
                )
            ).one()
            grouped = select(_c.event_type, func.count()).group_by(_c.event_type)
            by_type = {str(t): int(n) for t, n in await conn.execute(grouped)}
            found = await storage(backend, conn)
    size, size_of = found.size_bytes, found.size_of
    path = backend.file_path(engine.url)
    if path:
        size, size_of = _file_size(path), "database file and WAL"
    return TableStats(
        rows=int(rows),
        oldest=oldest,
        newest=newest,
        size_bytes=size,
        size_of=size_of,
        by_type=dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        reclaimable_bytes=found.reclaimable_bytes,
        auto_vacuum=found.auto_vacuum,
        dead_rows=found.dead_rows,
    )
