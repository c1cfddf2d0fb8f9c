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
from typing import Any, TypeVar

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL

from event_log import (
    MAX_PAGE_SIZE,
    Event,
    EventFilter,
    EventLogger,
    ImportSourceError,
    InvalidEventError,
    MissingDriverError,
    StorageError,
    admin,
)

from . import _output

__all__ = [
    "CliError",
    "Settings",
    "describe_error",
    "display_url",
    "expected_errors",
    "iter_events",
    "open_log",
    "parse_url",
    "pass_settings",
    "progress_bar",
    "require_file",
    "require_schema",
    "run",
]

T = TypeVar("T")


class CliError(click.ClickException):
    """A failure the user can act on: printed as one line, exit status 1."""

    exit_code = 1


def parse_url(text: str | None) -> URL:
    """The database URL: ``text`` (the option or ``$EVENT_LOG_URL``), else the default
    SQLite file; a bare database name gets its async driver (``admin.database_url``).
    One the library cannot run on is a usage error."""
    try:
        return admin.database_url(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class Settings:
    """What the group passes to every command: the database URL."""

    def __init__(self, url_text: str | None, *, url_given: bool) -> None:
        self.url_text = url_text
        self.url_given = url_given  # on the command line, not from the environment
        self._url: URL | None = None

    @property
    def url(self) -> URL:
        # Parsed when a command first needs it, inside the command: a bad URL is then
        # reported with that command's help hint.
        if self._url is None:
            try:
                self._url = parse_url(self.url_text)
            except click.BadParameter as exc:
                exc.param_hint = "'--url' / EVENT_LOG_URL"
                raise
        return self._url


pass_settings = click.make_pass_decorator(Settings)


def display_url(url: URL) -> str:
    """The URL as it may be shown: without its password."""
    return url.render_as_string(hide_password=True)


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
    """Failures people can fix become :class:`CliError` (a database failure, an unreadable
    import file, a driver not installed) or a usage error (an invalid event): one line,
    no traceback."""
    try:
        yield
    except InvalidEventError as exc:
        raise click.UsageError(str(exc)) from None
    except (ImportSourceError, MissingDriverError) as exc:
        raise CliError(str(exc)) from None
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
    path = admin.database_file(url)
    if path is not None and not path.is_file():
        raise CliError(
            f"no event log at {path}: the file does not exist (create it with "
            "'event-log db upgrade', or fill it with 'event-log demo')"
        )


async def require_schema(url_or_engine: Any, url: URL) -> None:
    """Fail with a clear line unless the database holds an event log at the newest revision."""
    current = await admin.current_revision(url_or_engine)
    head = admin.head_revision()
    if current == head:
        return
    if current is None:
        raise CliError(
            f"{display_url(url)} has no event-log schema: run 'event-log db upgrade' first"
        )
    if current not in {r.revision for r in admin.revisions()}:
        raise CliError(
            f"{display_url(url)} is at schema revision {current}, which this event-log "
            "does not know (was it upgraded by a newer version?)"
        )
    raise CliError(
        f"{display_url(url)} is at schema revision {current}, this event-log needs {head}: "
        "run 'event-log db upgrade'"
    )


async def iter_events(
    log: EventLogger, flt: EventFilter, *, newest_first: bool, limit: int | None
) -> AsyncIterator[Event]:
    """Matching events page by page (keyset cursors), at most ``limit`` (None: all)."""
    cursor: str | None = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = MAX_PAGE_SIZE if remaining is None else min(remaining, MAX_PAGE_SIZE)
        page = await log.list_events(
            filter=flt, limit=size, cursor=cursor, newest_first=newest_first
        )
        for event in page.events:
            yield event
        if remaining is not None:
            remaining -= len(page.events)
        cursor = page.next_cursor
        if cursor is None:
            return


def progress_bar(label: str) -> Progress:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    console = _output.stderr_console()
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
