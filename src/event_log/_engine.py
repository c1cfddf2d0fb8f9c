"""Engine factory: URL resolution, SQLite tuning, the in-memory pool, asyncpg, asyncmy.

Nothing here runs at import time; engines are made by :func:`create_engine`
when a logger is opened.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = [
    "DEFAULT_URL",
    "ENV_URL",
    "MYSQL_DIALECTS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "backend_name",
    "create_engine",
    "is_memory_sqlite",
    "resolve_url",
    "sqlite_pragmas",
]

DEFAULT_URL = "sqlite+aiosqlite:///data/events.db"
ENV_URL = "EVENT_LOG_URL"

# How long an SQLite connection waits for another process's write lock before
# failing with "database is locked". Writes here are short batches, so five
# seconds only runs out when something is truly stuck.
SQLITE_BUSY_TIMEOUT_MS = 5_000

# SQLAlchemy's names for MariaDB: "mysql" for mysql+asyncmy:// URLs, "mariadb"
# for mariadb+asyncmy://. The library treats both as one backend, "mysql".
MYSQL_DIALECTS = frozenset({"mysql", "mariadb"})

# Every MariaDB session: UTC (DATETIME values are UTC, and functions that read the
# session time zone must agree), and strict mode on every table (a value that
# does not fit is an error, never silently truncated or zeroed).
MYSQL_SESSION_SQL = (
    "SET time_zone = '+00:00', sql_mode = CONCAT_WS(',', @@sql_mode, 'STRICT_ALL_TABLES')"
)


def backend_name(dialect_name: str) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (MariaDB, under either of its names)."""
    return "mysql" if dialect_name in MYSQL_DIALECTS else dialect_name


def resolve_url(url: str | URL | None, environ: Mapping[str, str] | None = None) -> URL:
    """Explicit argument, then ``$EVENT_LOG_URL``, then :data:`DEFAULT_URL`."""
    if url is None:
        env = os.environ if environ is None else environ
        url = env.get(ENV_URL) or DEFAULT_URL
    return make_url(url)


def is_memory_sqlite(url: URL) -> bool:
    """True for ``sqlite+aiosqlite://`` and ``...:///:memory:`` (not shared-cache URIs)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


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


def create_engine(url: URL, **engine_kwargs: Any) -> AsyncEngine:
    """An :class:`AsyncEngine` tuned for an append-heavy event log on ``url``'s backend."""
    backend = backend_name(url.get_backend_name())
    if backend == "mysql":
        return _create_mysql_engine(url, **engine_kwargs)
    if backend != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, **engine_kwargs)

    memory = is_memory_sqlite(url)
    if memory:
        # One connection shared by every session: an in-memory SQLite database
        # lives exactly as long as its connection, i.e. as long as the logger.
        url = url.set(database=":memory:")
        engine_kwargs.setdefault("poolclass", StaticPool)
        engine_kwargs.setdefault("connect_args", {"check_same_thread": False})
    elif url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

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


def _create_mysql_engine(url: URL, **engine_kwargs: Any) -> AsyncEngine:
    """MariaDB through asyncmy: utf8mb4, READ COMMITTED, UTC sessions.

    READ COMMITTED gives every statement a fresh snapshot (as on PostgreSQL),
    so a reader that holds a connection never reads an old one, and InnoDB
    takes no gap locks, so a prune batch never blocks inserts at the end of an
    index.
    """
    if "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    engine_kwargs.setdefault("isolation_level", "READ COMMITTED")
    engine = create_async_engine(url, pool_pre_ping=True, **engine_kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _session(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(MYSQL_SESSION_SQL)
        finally:
            cursor.close()

    return engine
