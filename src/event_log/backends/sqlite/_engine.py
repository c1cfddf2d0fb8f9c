"""SQLite connections: WAL, a busy timeout, incremental auto-vacuum, the in-memory pool."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_sqlite_engine",
    "file_path",
    "is_memory",
    "prepare_path",
    "sqlite_pragmas",
]

# How long an SQLite connection waits for another process's write lock before
# failing with "database is locked". Writes here are short batches, so five
# seconds only runs out when something is truly stuck.
SQLITE_BUSY_TIMEOUT_MS = 5_000


def is_memory(url: URL) -> bool:
    """True for ``sqlite+aiosqlite://`` and ``...:///:memory:`` (not shared-cache URIs)."""
    return url.database in (None, "", ":memory:")


_READ_ONLY_PREFIX = "file:"


def file_path(url: URL) -> str | None:
    """The file of a file database (also of the read-only URI a reader's engine uses)."""
    if is_memory(url):
        return None
    database = str(url.database)
    if url.query.get("uri") == "true" and database.startswith(_READ_ONLY_PREFIX):
        return unquote(database[len(_READ_ONLY_PREFIX) :])
    return database


def read_only_url(url: URL) -> URL:
    """``url`` as an SQLite URI filename opened with ``mode=ro``: never created, never written.

    On a read-only file system nothing can change the file, and a WAL database
    there could not be opened at all (SQLite would need to create its shared
    memory file beside it): it is opened as ``immutable`` instead.
    """
    path = Path(str(url.database)).expanduser().absolute()
    options = {"mode": "ro", "uri": "true"}
    if _on_read_only_mount(path):
        options["immutable"] = "1"
    return url.set(database=_READ_ONLY_PREFIX + quote(str(path))).update_query_dict(options)


def _on_read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def sqlite_pragmas(*, memory: bool, read_only: bool = False) -> list[str]:
    """The PRAGMAs every connection to an event-log SQLite database runs first."""
    pragmas = [
        f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",
        # The event_log table has no foreign keys; keep the check off the hot path.
        "PRAGMA foreign_keys = OFF",
    ]
    if read_only:
        # A reader changes nothing: the file keeps the journal mode its writers chose.
        return pragmas
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


def create_sqlite_engine(url: URL, *, read_only: bool = False, **engine_kwargs: Any) -> AsyncEngine:
    """An engine whose every connection is tuned by :func:`sqlite_pragmas`; with
    ``read_only`` the file is opened with ``mode=ro`` (a missing file is an error)."""
    memory = is_memory(url)
    read_only = read_only and not memory  # an in-memory database is its engine's own
    if read_only:
        url = read_only_url(url)
    if memory:
        # One connection shared by every session: an in-memory SQLite database
        # lives exactly as long as its connection, i.e. as long as the logger.
        url = url.set(database=":memory:")
        engine_kwargs.setdefault("poolclass", StaticPool)
        engine_kwargs.setdefault("connect_args", {"check_same_thread": False})

    engine = create_async_engine(url, **engine_kwargs)
    pragmas = sqlite_pragmas(memory=memory, read_only=read_only)

    @event.listens_for(engine.sync_engine, "connect")
    def _tune(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if not memory and not read_only:
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
