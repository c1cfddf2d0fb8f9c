"""SQLite connections: WAL, a busy timeout, incremental auto-vacuum, the in-memory pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "create_sqlite_engine", "is_memory", "sqlite_pragmas"]

# How long an SQLite connection waits for another process's write lock before
# failing with "database is locked". Writes here are short batches, so five
# seconds only runs out when something is truly stuck.
SQLITE_BUSY_TIMEOUT_MS = 5_000


def is_memory(url: URL) -> bool:
    """True for ``sqlite+aiosqlite://`` and ``...:///:memory:`` (not shared-cache URIs)."""
    return url.database in (None, "", ":memory:")


def sqlite_pragmas(*, memory: bool) -> list[str]:
    """The PRAGMAs every connection to an event-log SQLite database runs first."""
    pragmas = [
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        # The event_log table has no foreign keys; keep the check off the hot path.
        "PRAGMA foreign_keys = OFF",
    ]
    if not memory:
        pragmas += [
            # WAL: readers never block the writer and the writer never blocks readers.
            "PRAGMA journal_mode = WAL",
            # NORMAL in WAL mode: a commit survives a crash of the process; only
            # an OS crash or power loss can roll back the last few commits. FULL
            # would fsync on every commit and cap group commit at disk latency.
            "PRAGMA synchronous = NORMAL",
        ]
    return pragmas


def prepare_path(url: URL) -> None:
    """Create the folder of a file database (a new database's file comes with it)."""
    if not is_memory(url) and url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def create_sqlite_engine(url: URL, **engine_kwargs: Any) -> AsyncEngine:
    """An engine whose every connection is tuned by :func:`sqlite_pragmas`."""
    memory = is_memory(url)
    if memory:
        # One connection shared by every session: an in-memory SQLite database
        # lives exactly as long as its connection, i.e. as long as the logger.
        url = url.set(database=":memory:")
        engine_kwargs.setdefault("poolclass", StaticPool)
        engine_kwargs.setdefault("connect_args", {"check_same_thread": False})

    engine = create_async_engine(url, **engine_kwargs)
    pragmas = sqlite_pragmas(memory=memory)

    @event.listens_for(engine.sync_engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA page_count")
                if cursor.fetchone()[0] == 0:
                    # A new, empty file: incremental auto-vacuum lets prune hand
                    # freed pages back to the file system in small steps. It must
                    # be chosen before the first page is written (WAL writes one).
                    cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    return engine
