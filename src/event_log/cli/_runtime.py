"""The edge of the command line: the database URL, opening the log, running a coroutine,
and turning the failures people can fix into one clear line.

Commands call :func:`run` (the only ``asyncio.run``) with a coroutine that opens
the log through :func:`open_log`. Readers never create or migrate a database:
they say what is missing and which command makes it. Writers (``log``,
``import``, ``demo``) bring the schema to the newest revision first, as
``EventLogger.open()`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine

from event_log import Event, EventLogger, InvalidEventError, StorageError
from event_log._engine import is_memory_sqlite, resolve_url
from event_log._errors import translate_storage_errors
from event_log._filters import filter_from

from . import _migrations

__all__ = [
    "CliError",
    "Filters",
    "describe_error",
    "display_url",
    "expected_errors",
    "iter_events",
    "open_log",
    "parse_url",
    "require_file",
    "require_schema",
    "run",
    "sqlite_path",
]

T = TypeVar("T")

# The async drivers event-log runs on; a bare backend name gets its driver.
_DRIVERS = {
    "sqlite": "aiosqlite",
    "postgresql": "asyncpg",
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
}


class CliError(click.ClickException):
    """A failure the user can act on: printed as one line, exit status 1."""

    exit_code = 1


def parse_url(text: str | None) -> URL:
    """The database URL: ``text``, else ``$EVENT_LOG_URL``, else the default SQLite file.

    ``sqlite:///x.db``, ``postgresql://...`` and ``mysql://...`` (MariaDB) get their
    async driver; any other backend or driver is a usage error.
    """
    try:
        url = resolve_url(text)
    except ArgumentError as exc:
        raise click.BadParameter(f"{text!r} is not a database URL ({exc})") from None
    backend = url.get_backend_name()
    if backend not in _DRIVERS:
        raise click.BadParameter(
            f"unsupported database {backend!r} in {display_url(url)}: use "
            "sqlite+aiosqlite:///FILE, postgresql+asyncpg://USER@HOST/DB or "
            "mysql+asyncmy://USER@HOST/DB"
        )
    driver = url.get_driver_name()
    if url.drivername == backend:
        url = url.set(drivername=f"{backend}+{_DRIVERS[backend]}")
    elif driver != _DRIVERS[backend]:
        raise click.BadParameter(
            f"driver {driver!r} in {display_url(url)} is not async: use "
            f"{backend}+{_DRIVERS[backend]}://..."
        )
    return url


def display_url(url: URL) -> str:
    """The URL as it may be shown: without its password."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of an SQLite file URL; None for servers and in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or is_memory_sqlite(url) or not url.database:
        return None
    return Path(url.database).expanduser()


def describe_error(exc: BaseException) -> str:
    """The innermost cause's message, on one line (drivers nest theirs several deep)."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root).strip() or type(root).__name__
    first = text.splitlines()[0].strip()
    return first if len(first) <= 300 else first[:297] + "..."


@contextmanager
def expected_errors(url: URL | None = None) -> Iterator[None]:
    """Failures people can fix become :class:`CliError` (a database failure) or a usage
    error (an invalid event): one line, no traceback."""
    try:
        yield
    except InvalidEventError as exc:
        raise click.UsageError(str(exc)) from None
    except StorageError as exc:
        where = f" ({display_url(url)})" if url is not None else ""
        raise CliError(f"database error{where}: {describe_error(exc)}") from None


def run(coroutine: Coroutine[Any, Any, T], *, url: URL | None = None) -> T:
    """Run the command's coroutine: the command line's one ``asyncio.run``."""
    with expected_errors(url):
        return asyncio.run(coroutine)


@asynccontextmanager
async def open_log(url: URL, *, migrate: bool = False) -> AsyncIterator[EventLogger]:
    """An open :class:`EventLogger`; with ``migrate`` the schema is created or upgraded,
    without it the database must exist and be at the newest revision."""
    if not migrate:
        require_file(url)
    async with EventLogger.open(url, migrate=migrate) as log:
        if not migrate:
            await require_schema(log.engine, url)
        yield log


def require_file(url: URL) -> None:
    """An SQLite file must exist before a reader opens it (connecting would create it)."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise CliError(
            f"no event log at {path}: the file does not exist (create it with "
            "'event-log db upgrade', or fill it with 'event-log demo')"
        )


async def require_schema(engine: AsyncEngine, url: URL) -> None:
    """Fail with a clear line unless the database holds an event log at the newest revision."""
    with translate_storage_errors("reading the schema revision"):
        current = await _migrations.current_revision(engine)
    head = _migrations.head_revision()
    if current == head:
        return
    if current is None:
        raise CliError(
            f"{display_url(url)} has no event-log schema: run 'event-log db upgrade' first"
        )
    if current not in _migrations.known_revisions():
        raise CliError(
            f"{display_url(url)} is at schema revision {current}, which this event-log "
            "does not know (was it upgraded by a newer version?)"
        )
    raise CliError(
        f"{display_url(url)} is at schema revision {current}, this event-log needs {head}: "
        "run 'event-log db upgrade'"
    )


@dataclass(frozen=True, slots=True)
class Filters:
    """The filters of ``list_events`` as the command line gives them (already validated)."""

    event_type: tuple[str, ...] | None = None
    source: str | None = None
    task_id: str | None = None
    agent_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude_event_type: tuple[str, ...] | None = None
    exclude_source: tuple[str, ...] | None = None
    data_contains: dict[str, Any] | None = None
    data_where: tuple[tuple[str, str, Any], ...] | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Filters:
        types = tuple(options.pop("event_types", None) or ()) or None
        flt = cls(
            event_type=types,
            source=options.pop("source", None),
            task_id=options.pop("task_id", None),
            agent_id=options.pop("agent_id", None),
            since=options.pop("since", None),
            until=options.pop("until", None),
            exclude_event_type=tuple(options.pop("exclude_types", None) or ()) or None,
            exclude_source=tuple(options.pop("exclude_sources", None) or ()) or None,
            data_contains=options.pop("data_contains", None),
            data_where=tuple(options.pop("data_where", None) or ()) or None,
        )
        try:
            filter_from(None, flt.kwargs())
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        return flt

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``list_events``, ``count_events`` and ``follow``."""
        return {
            "event_type": self.event_type,
            "source": self.source,
            "task_id": self.task_id,
            "agent_id": self.agent_id,
            "since": self.since,
            "until": self.until,
            "exclude_event_type": self.exclude_event_type,
            "exclude_source": self.exclude_source,
            "data_contains": self.data_contains,
            "data_where": self.data_where,
        }


async def iter_events(
    log: EventLogger, flt: Filters, *, newest_first: bool, limit: int | None
) -> AsyncIterator[Event]:
    """Matching events page by page (keyset cursors), at most ``limit`` (None: all)."""
    cursor: str | None = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = 1000 if remaining is None else min(remaining, 1000)
        page = await log.list_events(
            **flt.kwargs(), limit=size, cursor=cursor, newest_first=newest_first
        )
        for event in page.events:
            yield event
        if remaining is not None:
            remaining -= len(page.events)
        cursor = page.next_cursor
        if cursor is None:
            return
