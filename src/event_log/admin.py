"""Database administration: schema revisions, drift checks, partitions, the data index, sizes.

What ``event-log db ...`` and ``event-log stats`` do, for programs too. Every
function takes a database URL (``None``: ``$EVENT_LOG_URL``, then
``DEFAULT_URL``), for which an engine is made and disposed, or a caller's
``AsyncEngine``, which is used and left open. Migrations run the packaged
Alembic scripts on a connection of that engine, so they work from an
installed wheel with no ``alembic.ini`` and with the same SQLite tuning as the
logger. A database failure raises :class:`~event_log.StorageError`.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import create_engine, resolve_url
from ._errors import EventLogError, RevisionError, translate_storage_errors
from ._migrate import alembic_config
from ._stats import TableStats
from ._stats import table_stats as _table_stats
from .backends import Backend, backend_named
from .backends.postgresql._data_index import DATA_INDEX_NAME
from .backends.postgresql._partitions import Partition, list_partitions, partitioning

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "DATA_INDEX_NAME",
    "Features",
    "Partition",
    "PartitionReport",
    "RevisionChange",
    "RevisionError",
    "SchemaDriftError",
    "SchemaRevision",
    "TableStats",
    "check",
    "current_revision",
    "database_file",
    "database_url",
    "downgrade",
    "features",
    "head_revision",
    "partition",
    "partitions",
    "revisions",
    "table_stats",
    "upgrade",
]

UrlOrEngine = str | URL | AsyncEngine | None


class SchemaDriftError(EventLogError):
    """The database's schema differs from event-log's model (see :func:`check`)."""


@dataclass(frozen=True, slots=True)
class SchemaRevision:
    """One packaged schema revision: its id, the one before it (None: the first), the first
    line of its description, and whether it is the newest (head)."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


@dataclass(frozen=True, slots=True)
class RevisionChange:
    """The database's revision before and after a migration (None: no schema)."""

    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class PartitionReport:
    """What :func:`partition` did: the revisions before and after its upgrade, the layout
    before and after ("day", "month" or None for a plain table), the range partitions now."""

    before: str | None
    after: str | None
    was: str | None
    now: str | None
    partitions: list[Partition]


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest packaged revision: the one this event-log needs."""
    head = _scripts().get_current_head()
    assert head is not None, "event-log ships at least one revision"
    return head


def revisions() -> list[SchemaRevision]:
    """Every packaged revision, newest first."""
    scripts = _scripts()
    heads = set(scripts.get_heads())
    found = []
    for script in scripts.walk_revisions():
        down = script.down_revision
        found.append(
            SchemaRevision(
                revision=script.revision,
                down_revision=down if isinstance(down, str) or down is None else ",".join(down),
                message=(script.doc or "").strip().splitlines()[0] if script.doc else "",
                is_head=script.revision in heads,
            )
        )
    return found


def _backend_of(url: URL) -> Backend | None:
    """The backend of ``url``'s database (its driver unchecked); None for one event-log
    does not run on. The registry knows the names: nothing here spells one."""
    try:
        return backend_named(url.drivername.partition("+")[0])
    except ValueError:
        return None


def database_url(url: str | URL | None = None) -> URL:
    """The database URL event-log would use: ``url``, else ``$EVENT_LOG_URL``, else
    ``DEFAULT_URL``, checked before anything connects.

    A bare database name gets its backend's default async driver
    (``sqlite:///x.db`` is ``sqlite+aiosqlite:///x.db``). ``ValueError`` (one
    line, password hidden) for text that is no URL, a database event-log does
    not run on, or a driver it does not run on.
    """
    try:
        resolved = resolve_url(url)
    except ArgumentError as exc:
        raise ValueError(f"{url!r} is not a database URL ({exc})") from None
    shown = resolved.render_as_string(hide_password=True)
    name, plus, driver = resolved.drivername.partition("+")
    backend = _backend_of(resolved)
    if backend is None:
        raise ValueError(
            f"unsupported database {name!r} in {shown}: use sqlite+aiosqlite:///FILE, "
            "postgresql+asyncpg://USER@HOST/DB or mysql+asyncmy://USER@HOST/DB"
        )
    drivers = list(backend.drivers)
    if not plus:
        return resolved.set(drivername=f"{name}+{drivers[0]}")
    if driver not in drivers:
        choices = " or ".join(f"{name}+{d}://..." for d in drivers)
        raise ValueError(
            f"driver {driver!r} in {shown} is not async, or not one event-log runs on: "
            f"use {choices}"
        )
    return resolved


def database_file(url: str | URL | None = None) -> Path | None:
    """The file that holds the database at ``url`` (SQLite); None for servers and for
    in-memory SQLite. Readers check it exists first: connecting would create it."""
    resolved = resolve_url(url)
    backend = _backend_of(resolved)
    path = None if backend is None else backend.file_path(resolved)
    return Path(path).expanduser() if path else None


@dataclass(frozen=True, slots=True)
class Features:
    """What the database at a URL can have beyond the event log itself: time
    ``partitions`` (see :func:`partition`) and the optional ``data_index`` that
    serves ``data_contains`` (see :func:`event_log.create_data_index`)."""

    partitions: bool
    data_index: bool


def features(url: str | URL | None = None) -> Features:
    """What the database at ``url`` supports (nothing is connected to). ``ValueError`` for
    a database event-log does not run on."""
    backend = _backend_of(resolve_url(url))
    if backend is None:
        raise ValueError(f"event-log does not run on {database_url(url)}")
    # A backend that has the index implements its creation; the base class's says no.
    has_index = type(backend).create_data_index is not Backend.create_data_index
    return Features(partitions=backend.partitions is not None, data_index=has_index)


@asynccontextmanager
async def _engine(
    url_or_engine: UrlOrEngine, action: str, *, read_only: bool = False
) -> AsyncIterator[AsyncEngine]:
    """The caller's engine, or one made for the URL; a reader's (``read_only``) opens a
    file or server database so that it refuses writes, and never creates a file."""
    with translate_storage_errors(action):
        if isinstance(url_or_engine, AsyncEngine):
            yield url_or_engine
            return
        engine = create_engine(resolve_url(url_or_engine), read_only=read_only)
        try:
            yield engine
        finally:
            await engine.dispose()


def _config(connection: Connection) -> Config:
    config = alembic_config(connection)
    # Alembic prints its own chatter ("No new upgrade operations detected.") to the
    # stdout it saw at import; callers say what happened themselves.
    config.stdout = io.StringIO()
    return config


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(url_or_engine: UrlOrEngine = None) -> str | None:
    """The database's schema revision; None when it has no event-log schema (an SQLite
    file that does not exist included: it is not created)."""
    if not isinstance(url_or_engine, AsyncEngine):
        path = database_file(url_or_engine)
        if path is not None and not path.is_file():
            return None
    async with (
        _engine(url_or_engine, "reading the schema revision", read_only=True) as engine,
        engine.connect() as connection,
    ):
        return await connection.run_sync(_current)


async def _migrate(
    url_or_engine: UrlOrEngine, action: str, step: Callable[[Connection], None]
) -> RevisionChange:
    from alembic.util import CommandError

    async with _engine(url_or_engine, action) as engine:
        try:
            # One transaction for the whole step, committed when the block exits.
            async with engine.begin() as connection:
                before = await connection.run_sync(_current)
                await connection.run_sync(step)
                after = await connection.run_sync(_current)
        except CommandError as exc:
            raise RevisionError(str(exc)) from None
    return RevisionChange(before, after)


async def upgrade(url_or_engine: UrlOrEngine = None, revision: str = "head") -> RevisionChange:
    """Upgrade the schema to ``revision`` (default: the newest), creating it in an empty
    database. :class:`RevisionError` for a revision that does not exist."""
    from alembic import command

    return await _migrate(
        url_or_engine, "schema upgrade", lambda c: command.upgrade(_config(c), revision)
    )


async def downgrade(url_or_engine: UrlOrEngine, revision: str) -> RevisionChange:
    """Downgrade the schema to ``revision``: ``"-1"`` (one step), ``"base"`` (drops every
    table and every event) or a revision id. :class:`RevisionError` for one that does not
    exist."""
    from alembic import command

    return await _migrate(
        url_or_engine, "schema downgrade", lambda c: command.downgrade(_config(c), revision)
    )


def _check(connection: Connection) -> None:
    from alembic import command
    from alembic.util import AutogenerateDiffsDetected, CommandError

    if _current(connection) is None:
        # Before alembic looks: it would try to create its version table.
        raise RevisionError("the database has no event-log schema")
    try:
        command.check(_config(connection))
    except AutogenerateDiffsDetected as exc:
        raise SchemaDriftError(" ".join(str(exc).split())) from exc
    except CommandError as exc:
        raise RevisionError(str(exc)) from None


async def check(url_or_engine: UrlOrEngine = None) -> None:
    """Compare the database's schema with event-log's model.

    :class:`SchemaDriftError` when they differ (the optional GIN data index is
    no difference); :class:`RevisionError` when the database is not at the
    newest revision (an SQLite file that does not exist included).
    """
    if not isinstance(url_or_engine, AsyncEngine):
        path = database_file(url_or_engine)
        if path is not None and not path.is_file():
            raise RevisionError(f"{path} does not exist, so it has no event-log schema")
    async with (
        _engine(url_or_engine, "checking the schema", read_only=True) as engine,
        engine.connect() as connection,
    ):
        try:
            await connection.run_sync(_check)
        finally:
            await connection.rollback()


async def _layout(engine: AsyncEngine, read: Callable[[Connection], Any]) -> Any:
    async with engine.connect() as connection:
        try:
            return await connection.run_sync(read)
        finally:
            await connection.rollback()


async def partitions(url_or_engine: UrlOrEngine = None) -> list[Partition]:
    """The range partitions of ``event_log``, oldest first; ``[]`` for a plain table and on
    databases without partitions (the DEFAULT partition is not listed)."""
    async with _engine(url_or_engine, "listing partitions", read_only=True) as engine:
        return list(await _layout(engine, list_partitions))


async def partition(
    url_or_engine: UrlOrEngine, by: str, *, ahead: int | None = None
) -> PartitionReport:
    """Upgrade to the newest revision, then partition ``event_log`` by ``by`` ("day" or
    "month"), keeping every row, or make it a plain table again ("none").

    ``ahead``: periods to create after the current one (default 7 days, 2
    months). ``ValueError`` for another ``by``, for "day"/"month" on a database
    other than PostgreSQL, and for a table partitioned the other way.
    """
    from alembic import command

    def step(connection: Connection) -> None:
        config = _config(connection)
        config.attributes["partition"] = by
        if ahead is not None:
            config.attributes["partition_ahead"] = ahead
        command.upgrade(config, "head")

    if by not in ("day", "month", "none"):
        raise ValueError(f"by must be 'day', 'month' or 'none', not {by!r}")
    if ahead is not None and ahead < 0:
        raise ValueError("ahead must be >= 0")
    async with _engine(url_or_engine, "partitioning") as engine:
        was = await _layout(engine, partitioning)
        change = await _migrate(engine, "partitioning", step)
        now = await _layout(engine, partitioning)
        parts = await _layout(engine, list_partitions)
    return PartitionReport(change.before, change.after, was, now, list(parts))


async def table_stats(url_or_engine: UrlOrEngine = None) -> TableStats:
    """Rows, time range, counts by type and size on disk of the event log (see
    :class:`TableStats`)."""
    async with _engine(url_or_engine, "reading statistics", read_only=True) as engine:
        return await _table_stats(engine)
