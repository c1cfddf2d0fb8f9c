"""The edge of the command line: the database URL, opening the log, running a coroutine,
and turning the failures people can fix into one clear line.

Commands call :func:`run` (the only ``asyncio.run``) with a coroutine that opens
the log through :func:`open_log`. Readers open the database read-only: they
never create, migrate or change it, and say what is missing and which command
makes it. Writers (``log``, ``import``, ``demo``) may create the file and its
folder and bring the schema to the newest revision first, as
``EventLogger.open()`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

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
    "Listing",
    "Mode",
    "Settings",
    "check_readable",
    "describe_error",
    "display_url",
    "expected_errors",
    "open_log",
    "parse_url",
    "pass_settings",
    "progress_bar",
    "require_file",
    "require_schema",
    "require_writable",
    "run",
    "storage_failure",
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
        raise CliError(storage_failure(url, exc)) from None


def run(coroutine: Coroutine[Any, Any, T], *, url: URL | None = None) -> T:
    """Run the command's coroutine: the command line's one ``asyncio.run``."""
    with expected_errors(url):
        return asyncio.run(coroutine)


Mode = Literal["read", "write", "create"]


@asynccontextmanager
async def open_log(url: URL, *, mode: Mode = "read") -> AsyncIterator[EventLogger]:
    """An open :class:`EventLogger` for a command.

    ``read``: the database must exist at the newest revision, and is opened
    read-only (a reader never creates or changes a file). ``write``: the same,
    writable (``prune``). ``create``: the file and its folder are made when
    missing and the schema is brought to the newest revision (``log``, ``import``).
    """
    if mode != "create":
        require_file(url)
    if mode != "read":
        require_writable(url)
    try:
        log = await EventLogger.open(url, migrate=mode == "create", read_only=mode == "read")
    except StorageError as exc:
        raise CliError(storage_failure(url, exc, opening=True)) from None
    except admin.RevisionError as exc:  # a writer on a schema from a newer event-log
        raise CliError(f"{display_url(url)}: {exc}") from None
    try:
        if mode != "create":
            await require_schema(log.engine, url)
        yield log
    finally:
        await log.close()


async def check_readable(url: URL) -> None:
    """Fail the way a reader would (one line) unless ``url`` holds an event log at the
    newest revision: for a command that opens the database itself later (``serve``)."""
    async with open_log(url):
        pass


# What a driver's message says, in lower case -> what to do about it.
_FIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ('database "', "unknown database"),
        "create the database, then run 'event-log db upgrade'",
    ),
    (
        ("password", "authentication", "access denied", 'role "', "no pg_hba.conf"),
        "check the user name and password in --url / EVENT_LOG_URL",
    ),
    (
        (
            "connect call failed",
            "connection refused",
            "could not connect",
            "timeout",
            "timed out",
            "name or service not known",
            "can't connect",
            "unreachable",
            "no route to host",
            "temporary failure in name resolution",
        ),
        "check that the server is running and that --url / EVENT_LOG_URL names it",
    ),
)


def storage_failure(url: URL | None, exc: StorageError, *, opening: bool = False) -> str:
    """One line for a database failure: what failed, the driver's reason, the likeliest fix."""
    reason = describe_error(exc)
    lowered = reason.lower()
    fix = next((fix for words, fix in _FIXES if any(w in lowered for w in words)), None)
    if (
        fix is None
        and url is not None
        and any(w in lowered for w in ("readonly", "read-only", "unable to open"))
    ):
        fix = writable_problem(url) or "check that the file and its folder are writable"
    where = "" if url is None else f" {display_url(url)}"
    head = f"cannot open{where}" if opening or fix is not None else f"database error{where}"
    return f"{head}: {reason}" + (f" ({fix})" if fix else "")


def writable_problem(url: URL) -> str | None:
    """Why an SQLite file (or the folder it would be made in) cannot be written, or None."""
    path = admin.database_file(url)
    if path is None:
        return None
    existing = path if path.exists() else next((p for p in path.parents if p.exists()), None)
    if existing is None:
        return None
    with contextlib.suppress(OSError):
        if os.statvfs(existing).f_flag & os.ST_RDONLY:
            return f"{existing} is on a read-only file system: use a writable location"
    if path.is_file() and not os.access(path, os.W_OK):
        return f"{path} is read-only: make it writable (chmod u+w) or use another file"
    folder = path.parent if path.parent.exists() else existing
    if not os.access(folder, os.W_OK):
        return f"the folder {folder} is not writable: SQLite writes its journal beside the file"
    return None


def require_writable(url: URL) -> None:
    """A writer fails before it starts when its SQLite file cannot be written."""
    problem = writable_problem(url)
    if problem is not None:
        raise CliError(f"cannot write the event log: {problem}")


def require_file(url: URL) -> None:
    """An SQLite file must exist before a reader opens it (connecting would create it)."""
    path = admin.database_file(url)
    if path is not None and not path.is_file():
        where = "the file does not exist" if path.parent.is_dir() else "its folder does not exist"
        raise CliError(
            f"no event log at {path}: {where} (create it with 'event-log db upgrade', "
            "or fill it with 'event-log demo')"
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


class Listing:
    """Matching events page by page (keyset cursors), at most ``limit`` (None: all).

    Once iterated, ``more`` tells whether events beyond ``limit`` match: a command
    that stops at a limit says so rather than leave the rest unmentioned.
    """

    def __init__(
        self, log: EventLogger, flt: EventFilter, *, newest_first: bool, limit: int | None
    ) -> None:
        self._log, self._filter, self._newest_first, self._limit = log, flt, newest_first, limit
        self.more = False

    async def __aiter__(self) -> AsyncIterator[Event]:
        cursor: str | None = None
        remaining = self._limit
        while remaining is None or remaining > 0:
            size = MAX_PAGE_SIZE if remaining is None else min(remaining, MAX_PAGE_SIZE)
            page = await self._log.list_events(
                filter=self._filter, limit=size, cursor=cursor, newest_first=self._newest_first
            )
            for event in page.events:
                yield event
            if remaining is not None:
                remaining -= len(page.events)
            cursor = page.next_cursor
            if cursor is None:
                return
        # Stopped at the limit with a next page to read: one more event decides.
        rest = await self._log.list_events(
            filter=self._filter, limit=1, cursor=cursor, newest_first=self._newest_first
        )
        self.more = bool(rest.events)

    def say_if_more(self, what: str = "events") -> None:
        """On stderr, when the limit cut the listing short: how to get the rest."""
        if self.more:
            click.echo(
                f"More {what} match than the {self._limit} shown: "
                "raise --limit, or use --all for every one.",
                err=True,
            )


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
