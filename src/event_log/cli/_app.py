"""The ``event-log`` commands: thin click handlers over :class:`event_log.EventLogger`.

Each handler parses its options, runs one coroutine through ``_runtime.run``
(the only ``asyncio.run``) and renders the result with ``_output``. The SQL
the library does not offer (inserting imported events with their ids, table
statistics) lives in ``_sql``; migrations in ``_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import click
from alembic.util import CommandError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import URL

from event_log import Event, EventLogger, HistogramGroup, InvalidCursorError
from event_log._data_index import DATA_INDEX_NAME, create_data_index
from event_log._engine import create_engine
from event_log._errors import translate_storage_errors
from event_log._filters import filter_from
from event_log._queries import HISTOGRAM_GROUPS, MAX_BUCKETS
from event_log._retention import retention_rules

from . import _io, _legacy, _migrations, _output, _sql
from ._runtime import (
    CliError,
    Filters,
    display_url,
    expected_errors,
    iter_events,
    open_log,
    parse_url,
    require_file,
    require_schema,
    run,
    sqlite_path,
)
from ._times import DURATION_HELP, Duration, TimeParam, parse_duration
from ._where import parse_where

__all__ = ["app"]

F = TypeVar("F", bound=Callable[..., Any])


class _Settings:
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


pass_settings = click.make_pass_decorator(_Settings)


class _Group(click.Group):
    """Errors as one line on stderr: usage errors exit 2, failures 1, no tracebacks."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code = self._main(args, prog_name, complete_var, **extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _main(
        self,
        args: Sequence[str] | None,
        prog_name: str | None,
        complete_var: str | None,
        **extra: Any,
    ) -> int:
        try:
            result = super().main(
                args, prog_name or "event-log", complete_var, standalone_mode=False, **extra
            )
            return result if isinstance(result, int) else 0
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()  # the help, not an error line
            return exc.exit_code
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            click.echo(f"Error: {exc.format_message()}{hint}", err=True)
            return exc.exit_code
        except click.ClickException as exc:
            exc.show()
            return exc.exit_code
        except click.Abort:
            click.echo("Aborted.", err=True)
            return 1
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            # The reader went away (`event-log query | head`). click handles this itself
            # inside a command (quietly, status 1); this covers our own error output.
            # Point stdout at /dev/null so the interpreter's final flush stays quiet.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
            return 1


# -- shared options -----------------------------------------------------------------------


def _check_types(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Any:
    """Repeated and comma-separated ``--type`` values, each checked by the library's rule."""
    types = tuple(item.strip() for value in values for item in value.split(","))
    for item in types:
        try:
            filter_from(None, {"event_type": item})
        except ValueError:
            raise click.BadParameter(
                f"{item!r} is neither an event type (task.created) nor a prefix pattern (task.*)"
            ) from None
    return types


def _data_contains(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """``--data-contains``: a JSON object the library accepts as a filter."""
    data = _json_object(ctx, param, value)
    try:
        filter_from(None, {"data_contains": data})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return data


def _parse_where(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> Any:
    """``--where 'KEY OP VALUE'`` as ``(key, op, value)`` triples, each checked by the library."""
    triples = []
    for item in values:
        try:
            triple = parse_where(item)
            filter_from(None, {"data_where": [triple]})
        except ValueError as exc:
            raise click.BadParameter(f"{item!r}: {exc}") from None
        triples.append(triple)
    return tuple(triples)


def filter_options(func: F) -> F:
    """``--type`` (repeatable, prefixes), ``--source``, ``--task-id``, ``--agent-id``,
    ``--since``, ``--until``, ``--exclude-type`` and ``--exclude-source`` (repeatable),
    ``--data-contains`` and ``--where`` (repeatable)."""
    options = [
        click.option(
            "--type",
            "-t",
            "event_types",
            multiple=True,
            callback=_check_types,
            metavar="TYPE",
            help="Event type or prefix pattern like 'task.*'; repeat or comma-separate for "
            "several.",
        ),
        click.option("--source", "-s", help="Only events from this source."),
        click.option("--task-id", help="Only events of this task."),
        click.option("--agent-id", help="Only events of this agent."),
        click.option(
            "--since",
            type=TimeParam(),
            help="From this time on (inclusive): ISO 8601 (UTC unless an offset is given) "
            "or relative like 15m, 2h, 7d.",
        ),
        click.option("--until", type=TimeParam(), help="Before this time (exclusive); as --since."),
        click.option(
            "--exclude-type",
            "-T",
            "exclude_types",
            multiple=True,
            callback=_check_types,
            metavar="TYPE",
            help="Leave out this event type or prefix pattern; repeat or comma-separate.",
        ),
        click.option(
            "--exclude-source",
            "exclude_sources",
            multiple=True,
            metavar="SOURCE",
            help="Leave out events from this source; repeatable.",
        ),
        click.option(
            "--data-contains",
            callback=_data_contains,
            metavar="JSON",
            help="Only events whose data contains this JSON object (jsonb @> rules), "
            'e.g. \'{"model": "gpt-4"}\'.',
        ),
        click.option(
            "--where",
            "data_where",
            multiple=True,
            callback=_parse_where,
            metavar="'KEY OP VALUE'",
            help="Compare a top-level key of data: OP is =, !=, <, <=, >, >=; VALUE is JSON "
            "if it parses, else text, e.g. 'bid_sats>100' or 'model=gpt-4'. Repeatable "
            "(all must hold).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _progress(label: str) -> Progress:
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


# -- the group ----------------------------------------------------------------------------


@click.group(
    name="event-log",
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--url",
    envvar="EVENT_LOG_URL",
    show_envvar=True,
    metavar="URL",
    help="Database URL: sqlite+aiosqlite:///FILE, postgresql+asyncpg://USER@HOST/DB or "
    "mysql+asyncmy://USER@HOST/DB "
    "(default: sqlite+aiosqlite:///data/events.db).",
)
@click.version_option(package_name="event-log", prog_name="event-log")
@click.pass_context
def app(ctx: click.Context, url: str | None) -> None:
    """Look at, follow, export and maintain an event-log database.

    \b
      event-log demo                        fill the database with a swarm run
      event-log summary --every 5m          what happened in the last hour
      event-log task TASK_ID                one task's timeline
      event-log tail -f --type 'task.*'     follow events live (Ctrl-C stops)
      event-log query --since 2h -F json    events as JSON lines
    """
    source = ctx.get_parameter_source("url")
    ctx.obj = _Settings(url, url_given=source == click.core.ParameterSource.COMMANDLINE)


# -- db -----------------------------------------------------------------------------------


@app.group()
def db() -> None:
    """Schema migrations (Alembic, packaged with event-log)."""


async def _with_engine(url: URL, action: Callable[[Any], Any]) -> Any:
    engine = create_engine(url)
    try:
        with translate_storage_errors("migrating"):
            return await action(engine)
    finally:
        await engine.dispose()


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_settings
def db_upgrade(settings: _Settings, revision: str) -> None:
    """Upgrade the schema to REVISION (default: head); creates it in an empty database."""
    url = settings.url
    try:
        before, after = run(_with_engine(url, lambda e: _migrations.upgrade(e, revision)), url=url)
    except CommandError as exc:
        raise click.UsageError(str(exc)) from None
    if before == after:
        click.echo(f"{display_url(url)} is already at revision {after}.")
    else:
        click.echo(f"Upgraded {display_url(url)} from {before or 'an empty schema'} to {after}.")


@db.command("downgrade")
@click.argument("revision", default="-1")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def db_downgrade(settings: _Settings, revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION (default: -1, one step; 'base' drops everything)."""
    url = settings.url
    require_file(url)
    if not yes:
        drops = " and DELETES EVERY EVENT" if revision == "base" else ""
        click.confirm(f"Downgrade {display_url(url)} to {revision}{drops}?", abort=True, err=True)
    try:
        before, after = run(
            _with_engine(url, lambda e: _migrations.downgrade(e, revision)), url=url
        )
    except CommandError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"Downgraded {display_url(url)} from {before} to {after or 'base (empty)'}.")


@db.command("partition")
@click.option(
    "--by",
    type=click.Choice(["day", "month", "none"]),
    required=True,
    help="One partition per UTC day or month; 'none' makes event_log a plain table again.",
)
@click.option(
    "--ahead",
    type=click.IntRange(0, 10_000),
    help="Periods to create ahead of the current one (default: 7 days, 2 months).",
)
@pass_settings
def db_partition(settings: _Settings, by: str, ahead: int | None) -> None:
    """Partition event_log by time on PostgreSQL, keeping every row (upgrades first).

    Expired partitions are then dropped whole by prune. Run it again to create
    partitions ahead (loggers also do that by themselves).
    """
    url = settings.url
    if url.get_backend_name() != "postgresql":
        if by == "none":
            click.echo(f"{display_url(url)} is not PostgreSQL: event_log is a plain table.")
            return
        raise click.UsageError(
            f"time partitioning needs PostgreSQL; {display_url(url)} is "
            f"{url.get_backend_name()} (prune deletes in batches there)"
        )
    try:
        report = run(_with_engine(url, lambda e: _migrations.partition(e, by, ahead)), url=url)
    except (CommandError, ValueError) as exc:
        raise CliError(f"{display_url(url)}: {exc}") from None
    if report.before != report.after:
        click.echo(
            f"Upgraded {display_url(url)} from {report.before or 'an empty schema'} "
            f"to {report.after}."
        )
    if report.now is None:
        done = "is now" if report.was is not None else "is already"
        click.echo(f"event_log {done} a plain table.")
        return
    done = "is now" if report.was != report.now else "is already"
    parts = report.partitions
    span = f": {len(parts)} partitions" if parts else ": no range partitions"
    if parts:
        span += f", {parts[0].name} to {parts[-1].name}"
    click.echo(f"event_log {done} partitioned by {report.now}{span}, and event_log_default.")


def _current_revision(url: URL) -> str | None:
    """The database's revision; None also for an SQLite file that does not exist (which
    is left uncreated)."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None
    return run(_with_engine(url, _migrations.current_revision), url=url)  # type: ignore[no-any-return]


@db.command("current")
@pass_settings
def db_current(settings: _Settings) -> None:
    """Show the database's schema revision."""
    url = settings.url
    current = _current_revision(url)
    head = _migrations.head_revision()
    if current is None:
        click.echo(f"none (no event-log schema; 'event-log db upgrade' creates it, head is {head})")
    elif current == head:
        click.echo(f"{current} (head)")
    else:
        click.echo(f"{current} (head is {head}: run 'event-log db upgrade')")


@db.command("history")
@pass_settings
def db_history(settings: _Settings) -> None:
    """List the schema revisions, newest first, marking the database's own."""
    current = _current_revision(settings.url)
    for rev in _migrations.revisions():
        marks = [m for m, on in (("head", rev.is_head), ("current", rev.revision == current)) if on]
        suffix = f" ({', '.join(marks)})" if marks else ""
        click.echo(f"{rev.down_revision or '<base>'} -> {rev.revision}{suffix}: {rev.message}")


@db.command("check")
@pass_settings
def db_check(settings: _Settings) -> None:
    """Check that the database's schema matches event-log's model (no drift)."""
    url = settings.url
    require_file(url)
    try:
        run(_with_engine(url, _migrations.check), url=url)
    except CommandError as exc:
        raise CliError(f"{display_url(url)}: {exc} (run 'event-log db upgrade')") from None
    except _migrations.SchemaDriftError as exc:
        raise CliError(f"{display_url(url)} differs from event-log's model: {exc}") from None
    click.echo(
        f"{display_url(url)} matches event-log's model (revision {_migrations.head_revision()})."
    )


@db.command("index-data")
@pass_settings
def db_index_data(settings: _Settings) -> None:
    """Build the optional GIN index that serves --data-contains on PostgreSQL.

    Built with CREATE INDEX CONCURRENTLY (writers go on meanwhile); a no-op when
    it exists. SQLite and MariaDB have no such index: nothing is built there.
    """
    url = settings.url
    if url.get_backend_name() != "postgresql":
        backend = "SQLite" if url.get_backend_name() == "sqlite" else "MariaDB"
        click.echo(
            f"Nothing to build: {display_url(url)} is {backend}, which has no index for "
            "JSON containment (data filters read each row's data)."
        )
        return

    async def go() -> str:
        engine = create_engine(url)
        try:
            await require_schema(engine, url)
            return await create_data_index(engine)
        finally:
            await engine.dispose()

    outcome = run(go(), url=url)
    if outcome == "exists":
        click.echo(f"{DATA_INDEX_NAME} already exists on {display_url(url)}.")
    else:
        click.echo(f"Built {DATA_INDEX_NAME} on {display_url(url)}.")


# -- writing ------------------------------------------------------------------------------


def _json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter("must be a JSON object, like '{\"bid_sats\": 420}'")
    return data


@app.command("log")
@click.argument("event_type", metavar="TYPE")
@click.option("--source", "-s", required=True, help="Who logs it (an agent, 'coordinator').")
@click.option("--task-id", help="The task it belongs to.")
@click.option("--agent-id", help="The agent it concerns.")
@click.option("--data", callback=_json_object, metavar="JSON", help="A JSON object.")
@click.option("--timestamp", type=TimeParam(), help="When it happened (default: now).")
@_output.format_option("table", "json")
@pass_settings
def log_command(
    settings: _Settings,
    event_type: str,
    source: str,
    task_id: str | None,
    agent_id: str | None,
    data: dict[str, Any] | None,
    timestamp: datetime | None,
    fmt: str | None,
) -> None:
    """Log one event of type TYPE and print it as stored."""
    url = settings.url

    async def go() -> Event:
        async with open_log(url, migrate=True) as log:
            return await log.log_event(
                event_type,
                source,
                task_id=task_id,
                agent_id=agent_id,
                data=data,
                timestamp=timestamp,
            )

    _output.print_event(run(go(), url=url), _output.pick_format(fmt))


# -- reading ------------------------------------------------------------------------------


@app.command()
@filter_options
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), help="At most this many events (default 100)."
)
@click.option("--all", "everything", is_flag=True, help="Every matching event (pages through).")
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def query(
    settings: _Settings,
    /,
    limit: int | None,
    everything: bool,
    oldest_first: bool,
    fmt: str | None,
    **filter_args: Any,
) -> None:
    """List events matching the filters, newest first."""
    if everything and limit is not None:
        raise click.UsageError("use either --all or --limit")
    flt = Filters.from_options(filter_args)
    url = settings.url
    out = _output.EventStream(_output.pick_format(fmt))

    async def go() -> None:
        async with open_log(url) as log:
            cap = None if everything else (limit or 100)
            async for event in iter_events(log, flt, newest_first=not oldest_first, limit=cap):
                out.write(event)

    run(go(), url=url)
    out.close()


@app.command()
@click.argument("task_id")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def task(settings: _Settings, task_id: str, fmt: str | None) -> None:
    """A task's timeline: every event, oldest first, with the time between steps."""
    url = settings.url

    async def go() -> list[Event]:
        async with open_log(url) as log:
            return await log.get_task_events(task_id)

    events = run(go(), url=url)
    if not events:
        raise CliError(f"no events for task {task_id!r}")
    fmt = _output.pick_format(fmt)
    if fmt == "table":
        _output.print_timeline(f"Task {task_id}", events)
    else:
        out = _output.EventStream(fmt)
        out.write_all(events)
        out.close()


@app.command()
@click.argument("agent_id")
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=100, show_default=True)
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def agent(settings: _Settings, agent_id: str, limit: int, fmt: str | None) -> None:
    """An agent's most recent events, newest first."""
    url = settings.url

    async def go() -> list[Event]:
        async with open_log(url) as log:
            return await log.get_agent_events(agent_id, limit=limit)

    events = run(go(), url=url)
    if not events:
        raise CliError(f"no events for agent {agent_id!r}")
    out = _output.EventStream(_output.pick_format(fmt))
    out.write_all(events)
    out.close()


_BY = {"type": "event_type", "source": "source", "agent": "agent_id"}


@app.command()
@click.option(
    "--minutes",
    "-m",
    type=click.FloatRange(min=0, min_open=True),
    default=60,
    show_default=True,
    help="The window: the last this many minutes.",
)
@click.option("--by", type=click.Choice(list(_BY)), help="Count by (default: type).")
@click.option(
    "--every", type=Duration(positive=True), help=f"Draw a time histogram; {DURATION_HELP}."
)
@_output.format_option("table", "json")
@pass_settings
def summary(
    settings: _Settings, minutes: float, by: str | None, every: timedelta | None, fmt: str | None
) -> None:
    """Event counts over the last MINUTES, with bars; --every draws them over time."""
    url = settings.url
    fmt = _output.pick_format(fmt)
    until = datetime.now(UTC)
    try:
        since = until - timedelta(minutes=minutes)
    except OverflowError:
        raise click.BadParameter("too large", param_hint="'--minutes'") from None
    # The buckets are aligned to the epoch, so the window can straddle one more.
    if every is not None and (until - since) / every > MAX_BUCKETS - 1:
        raise click.BadParameter(
            f"{minutes:g} minutes in buckets of {_duration_text(every)} would be more than "
            f"{MAX_BUCKETS} buckets: choose a longer --every",
            param_hint="'--every'",
        )
    group = _BY[by] if by is not None else None
    window = f"Last {minutes:g} minutes"

    if every is None:

        async def counts() -> dict[str, int]:
            async with open_log(url) as log:
                if group is None or group == "event_type":
                    return await log.get_event_summary(minutes)
                # One bucket as long as the window (two when it straddles an epoch-
                # aligned boundary); the window's since/until bound what is counted.
                found: dict[str, int] = {}
                buckets = await log.get_event_histogram(
                    since=since,
                    until=until,
                    every=max(until - since, timedelta(seconds=1)),
                    by=cast(HistogramGroup, group),
                )
                for bucket in buckets:
                    for key, count in bucket.counts.items():
                        found[key] = found.get(key, 0) + count
                return found

        result = run(counts(), url=url)
        if fmt == "json":
            _output.echo_json(
                {
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "by": by or "type",
                    "counts": dict(sorted(result.items(), key=lambda kv: (-kv[1], kv[0]))),
                }
            )
        else:
            _output.print_counts(window, by or "type", result)
        return

    async def histogram() -> list[Any]:
        async with open_log(url) as log:
            return await log.get_event_histogram(
                since=since, until=until, every=every, by=cast(HistogramGroup | None, group)
            )

    buckets = run(histogram(), url=url)
    if fmt == "json":
        for bucket in buckets:
            _output.echo_json(bucket.model_dump(mode="json"))
    else:
        _output.print_histogram(f"{window}, every {_duration_text(every)}", buckets, by)


assert set(_BY.values()) <= set(HISTOGRAM_GROUPS)


def _duration_text(every: timedelta) -> str:
    seconds = every.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@app.command()
@filter_options
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="How many of the newest events to show first.",
)
@click.option("--follow", "-f", is_flag=True, help="Then follow new events until Ctrl-C.")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def tail(
    settings: _Settings, /, lines: int, follow: bool, fmt: str | None, **filter_args: Any
) -> None:
    """The newest events, oldest of them first; with -f, then new ones as they commit."""
    flt = Filters.from_options(filter_args)
    url = settings.url
    out = _output.EventStream(_output.pick_format(fmt), lines=True)

    async def go() -> None:
        async with open_log(url) as log:
            last: list[Event] = []
            if lines:
                page = await log.list_events(**flt.kwargs(), limit=lines)
                last = page.events[::-1]
            out.write_all(last)
            if not follow:
                return
            # SIGTERM ends it like Ctrl-C: the logger still closes on the way out.
            main = asyncio.current_task()
            if main is not None:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main.cancel)
            # Resume after the newest event shown: events that commit meanwhile are
            # replayed, not lost.
            cursor = last[-1].id if last else None
            try:
                await _follow(log, flt, cursor, out)
            except InvalidCursorError:
                # That event was pruned before following began: follow from now on.
                await _follow(log, flt, None, out)

    try:
        run(go(), url=url)
    except (KeyboardInterrupt, asyncio.CancelledError):
        # Ctrl-C (or SIGTERM) is how `tail -f` ends: the logger was closed on the way out.
        return
    if not follow and out.fmt == "table" and out.count == 0:
        _output.stderr_console().print("No matching events.")


async def _follow(
    log: EventLogger, flt: Filters, cursor: str | None, out: _output.EventStream
) -> None:
    events = log.follow(**flt.kwargs(), cursor=cursor)
    try:
        async for event in events:
            out.write(event)
    finally:
        aclose = getattr(events, "aclose", None)  # stop it now, not when collected
        if aclose is not None:
            await aclose()


# -- maintenance --------------------------------------------------------------------------


def _parse_overrides(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> dict[str, timedelta]:
    """Repeated ``--override TYPE_OR_PATTERN=DURATION`` as {pattern: duration}."""
    found: dict[str, timedelta] = {}
    for value in values:
        pattern, sep, duration_text = value.partition("=")
        pattern = pattern.strip()
        if not sep or not pattern or not duration_text.strip():
            raise click.BadParameter(
                f"{value!r} is not TYPE=DURATION (e.g. 'tool.*=7d' or 'system.error=90d')"
            )
        try:
            filter_from(None, {"event_type": pattern})
        except ValueError:
            raise click.BadParameter(
                f"{pattern!r} is neither an event type (system.error) nor a prefix pattern (tool.*)"
            ) from None
        try:
            duration = parse_duration(duration_text)
        except (ValueError, OverflowError):
            raise click.BadParameter(
                f"{duration_text.strip()!r} in {value!r} is not a duration: use {DURATION_HELP}"
            ) from None
        if pattern in found and found[pattern] != duration:
            raise click.BadParameter(f"{pattern!r} is given twice, with different durations")
        found[pattern] = duration
    return found


def _days(duration: timedelta) -> float:
    return duration / timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _PruneRule:
    """One retention rule as ``count_events`` filters: what it deletes, before when."""

    label: str
    keep: timedelta
    event_type: str | None
    exclude: tuple[str, ...]
    cutoff: datetime

    def filters(self) -> dict[str, Any]:
        return {
            "event_type": self.event_type,
            "exclude_event_type": self.exclude or None,
            "until": self.cutoff,
        }


def _prune_rules(older_than: timedelta, overrides: dict[str, timedelta]) -> list[_PruneRule]:
    """The rules ``prune_events`` will apply, most specific first (the library's own
    ``retention_rules``), as filters the dry-run and the confirmation count with."""
    try:
        rules = retention_rules(
            _days(older_than), {pattern: _days(d) for pattern, d in overrides.items()}
        )
    except (ValueError, OverflowError) as exc:
        raise click.UsageError(str(exc)) from None
    result: list[_PruneRule] = []
    labels: list[str] = []
    for rule in rules:
        if rule.spec is None:  # the default: everything no override governs
            result.append(_PruneRule("default", older_than, None, tuple(labels), rule.cutoff))
        else:
            keep = overrides[rule.label]
            result.append(_PruneRule(rule.label, keep, rule.label, tuple(labels), rule.cutoff))
            labels.append(rule.label)
    return result


async def _count_prunable(log: EventLogger, rules: Sequence[_PruneRule]) -> list[int]:
    return [await log.count_events(**rule.filters()) for rule in rules]


@app.command()
@click.option(
    "--older-than",
    type=Duration(),
    required=True,
    help=f"Delete events older than this; {DURATION_HELP}.",
)
@click.option(
    "--override",
    "overrides",
    multiple=True,
    callback=_parse_overrides,
    metavar="TYPE=DURATION",
    help="Keep this event type or prefix pattern for another time, e.g. 'tool.*=7d' or "
    "'system.error=90d'; repeatable, the longest match wins.",
)
@click.option("--dry-run", is_flag=True, help="Only say how many would be deleted.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_settings
def prune(
    settings: _Settings,
    older_than: timedelta,
    overrides: dict[str, timedelta],
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete events older than --older-than (per type with --override), in short batches."""
    url = settings.url
    rules = _prune_rules(older_than, overrides)
    default = rules[-1]
    before = (
        f"older than {_duration_text(older_than)} (before {_output.time_text(default.cutoff)} UTC)"
    )
    if overrides:
        before += "; " + ", ".join(
            f"{rule.label} older than {_duration_text(rule.keep)}" for rule in rules[:-1]
        )

    async def count() -> list[int]:
        async with open_log(url) as log:
            return await _count_prunable(log, rules)

    per_rule = run(count(), url=url)
    pending = sum(per_rule)
    if pending == 0:
        click.echo(f"No events {before}.")
        return
    if dry_run:
        click.echo(f"Would delete {pending} event{'s' if pending != 1 else ''} {before}.")
        if overrides:
            width = max(len(rule.label) for rule in rules)
            for rule, n in zip(rules, per_rule, strict=True):
                click.echo(
                    f"  {rule.label:<{width}}  {n:>8}  older than {_duration_text(rule.keep)} "
                    f"(before {_output.time_text(rule.cutoff)} UTC)"
                )
        return
    if not yes:
        click.confirm(f"Delete {pending} event{'s' if pending != 1 else ''} {before}?", abort=True)

    async def delete() -> int:
        async with open_log(url) as log:
            with _progress("Pruning") as progress:
                bar = progress.add_task("prune", total=pending)
                # The cutoffs stay the ones announced, however long the confirmation took.
                late = max(0.0, _days(datetime.now(UTC) - default.cutoff - older_than))
                pruning = asyncio.ensure_future(
                    log.prune_events(
                        older_than_days=_days(older_than) + late,
                        overrides={p: _days(d) + late for p, d in overrides.items()},
                    )
                )
                while not pruning.done():
                    await asyncio.wait({pruning}, timeout=0.2)
                    if not pruning.done():
                        left = sum(await _count_prunable(log, rules))
                        progress.update(bar, completed=max(0, pending - left))
                return await pruning

    deleted = run(delete(), url=url)
    click.echo(f"Deleted {deleted} event{'s' if deleted != 1 else ''} {before}.")


@app.command()
@filter_options
@click.option(
    "--output",
    "-o",
    required=True,
    metavar="FILE",
    help="Where to write: *.jsonl, *.jsonl.gz or *.csv ('-': JSON lines on stdout).",
)
@pass_settings
def export(settings: _Settings, /, output: str, **filter_args: Any) -> None:
    """Write matching events, oldest first, to a JSON lines (optionally gzipped) or CSV file."""
    flt = Filters.from_options(filter_args)
    try:
        _io.export_kind(output)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--output'") from None
    url = settings.url

    async def go() -> int:
        async with open_log(url) as log:
            total = await log.count_events(**flt.kwargs())
            with _progress("Exporting") as progress, _io.ExportFile(output) as out:
                bar = progress.add_task("export", total=total)
                return await _io.export_events(
                    log, flt, out, lambda n: progress.update(bar, completed=n)
                )

    count = run(go(), url=url)
    where = "stdout" if output == "-" else output
    click.echo(f"Exported {count} event{'s' if count != 1 else ''} to {where}.", err=output == "-")


@app.command("import")
@click.argument("file", metavar="FILE", required=False)
@click.option(
    "--from-sqlite",
    "legacy",
    metavar="PATH",
    help="Read a database of the original system instead (its table event_log or events).",
)
@pass_settings
def import_command(settings: _Settings, file: str | None, legacy: str | None) -> None:
    """Import events from a JSON lines file (.jsonl, .jsonl.gz; '-': stdin), or with
    --from-sqlite PATH from a database the original system wrote.

    Events keep their ids and timestamps; ids already stored are skipped, so
    importing twice adds nothing. Bad lines or rows are reported and skipped (exit 1).
    """
    if (file is None) == (legacy is None):
        raise click.UsageError("give either FILE or --from-sqlite PATH")
    if legacy is not None:
        _import_legacy(settings.url, legacy)
        return
    assert file is not None
    url = settings.url
    shown_bad = 20
    errors = _output.stderr_console()

    def bad_line(number: int, message: str) -> None:
        nonlocal shown_bad
        if shown_bad > 0:
            errors.print(f"{file}:{number}: {message}", style="red", soft_wrap=True)
        shown_bad -= 1

    async def go() -> _io.ImportReport:
        with _io.LineSource(file) as source:
            async with open_log(url, migrate=True) as log:
                with _progress("Importing") as progress:
                    bar = progress.add_task("import", total=source.size)

                    def advance(report: _io.ImportReport) -> None:
                        progress.update(bar, completed=source.position)

                    return await _io.import_lines(
                        log, source, on_bad_line=bad_line, on_progress=advance
                    )

    report = run(go(), url=url)
    if shown_bad < 0:
        errors.print(f"... and {-shown_bad} more bad line(s)", style="red")
    parts = [f"{report.already_present} already present"]
    if report.bad:
        parts.append(f"{len(report.bad)} bad line{'s' if len(report.bad) != 1 else ''} skipped")
    click.echo(
        f"Imported {report.imported} new event{'s' if report.imported != 1 else ''} "
        f"from {file} ({', '.join(parts)})."
    )
    if report.bad:
        raise click.exceptions.Exit(1)


def _import_legacy(url: URL, path: str) -> None:
    """``import --from-sqlite PATH``: every row of the original system's table(s)."""
    shown_bad = 100
    errors = _output.stderr_console()

    def bad_row(table: str, row_id: str | None, message: str) -> None:
        nonlocal shown_bad
        if shown_bad > 0:
            where = f"id={row_id!r}" if row_id is not None else "a row without id"
            errors.print(f"{path}: {table} {where}: {message}", style="red", soft_wrap=True)
        shown_bad -= 1

    async def go() -> tuple[_legacy.LegacyReport, list[str]]:
        with _legacy.LegacySource(path) as source:
            async with open_log(url, migrate=True) as log:
                with _progress("Importing") as progress:
                    bar = progress.add_task("import", total=source.total)

                    def advance(report: _legacy.LegacyReport) -> None:
                        progress.update(bar, completed=report.read)

                    report = await _legacy.import_legacy(
                        log, source, on_bad_row=bad_row, on_progress=advance
                    )
                    return report, source.tables

    report, tables = run(go(), url=url)
    if shown_bad < 0:
        errors.print(f"... and {-shown_bad} more bad row(s)", style="red")
    parts = [f"{report.already_present} already present"]
    if report.bad:
        parts.append(f"{len(report.bad)} bad row{'s' if len(report.bad) != 1 else ''} skipped")
    table_text = " and ".join(tables)
    click.echo(
        f"Read {report.read} row{'s' if report.read != 1 else ''} from {path} "
        f"(table {table_text}): imported {report.imported} new "
        f"event{'s' if report.imported != 1 else ''} ({', '.join(parts)})."
    )
    if report.bad:
        raise click.exceptions.Exit(1)


@app.command()
@_output.format_option("table", "json")
@pass_settings
def stats(settings: _Settings, fmt: str | None) -> None:
    """Rows, time range, size on disk, counts by type and schema revision."""
    url = settings.url

    async def go() -> tuple[_sql.TableStats, str | None]:
        require_file(url)
        engine = create_engine(url)
        try:
            await require_schema(engine, url)
            with translate_storage_errors("reading statistics"):
                return await _sql.table_stats(engine), await _migrations.current_revision(engine)
        finally:
            await engine.dispose()

    table, revision = run(go(), url=url)
    if _output.pick_format(fmt) == "json":
        _output.echo_json(
            {
                "url": display_url(url),
                "rows": table.rows,
                "oldest": None if table.oldest is None else table.oldest.isoformat(),
                "newest": None if table.newest is None else table.newest.isoformat(),
                "size_bytes": table.size_bytes,
                "revision": revision,
                "reclaimable_bytes": table.reclaimable_bytes,
                "auto_vacuum": table.auto_vacuum,
                "dead_rows": table.dead_rows,
                "by_type": table.by_type,
            }
        )
        return
    console = _output.stdout_console()
    rows = [
        ("database", display_url(url)),
        ("revision", f"{revision} (head)"),
        ("events", f"{table.rows:,}"),
        ("oldest", "-" if table.oldest is None else _output.time_text(table.oldest) + " UTC"),
        ("newest", "-" if table.newest is None else _output.time_text(table.newest) + " UTC"),
        ("size", _size_text(table.size_bytes, table.size_of)),
    ]
    if table.reclaimable_bytes is not None:
        rows.append(("free", _reclaimable_text(table.reclaimable_bytes, table.auto_vacuum)))
    if table.dead_rows is not None:
        dead = f"{table.dead_rows:,} rows (new rows reuse their space; VACUUM (FULL) returns it)"
        rows.append(("dead", dead))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"{key:<{width}}  {value}", soft_wrap=True)
    if table.by_type:
        console.print()
        _output.print_counts("By type", "type", table.by_type)


def _reclaimable_text(size: int, auto_vacuum: str | None) -> str:
    text = _size_text(size, "free pages") + " reclaimable"
    if auto_vacuum == "incremental":
        return f"{text}; incremental auto-vacuum: prune hands them back"
    if auto_vacuum == "full":
        return f"{text}; full auto-vacuum"
    return (
        f"{text}; auto-vacuum is off: run 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM' once "
        "(sqlite3 FILE, nothing else writing) so that prune can shrink the file"
    )


def _size_text(size: int | None, of: str) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return f"{text} ({of})"
        value /= 1024
    raise AssertionError("unreachable")


# -- demo ---------------------------------------------------------------------------------


@app.command()
@click.option("--agents", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--tasks", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=int, help="Random seed (default: random).")
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Multiplies every simulated delay (0.01: instant).",
)
@click.option(
    "--failure-rate",
    type=click.FloatRange(0, 1),
    default=0.25,
    show_default=True,
    help="Chance that a task fails.",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=3, show_default=True)
@pass_settings
def demo(
    settings: _Settings,
    agents: int,
    tasks: int,
    seed: int | None,
    time_scale: float,
    failure_rate: float,
    concurrency: int,
) -> None:
    """Run a small agent swarm that logs every step, then show what it logged."""
    from event_log import demo as demo_module

    url = settings.url
    argv = [
        "--url",
        url.render_as_string(hide_password=False),
        "--agents",
        str(agents),
        "--tasks",
        str(tasks),
        "--time-scale",
        str(time_scale),
        "--failure-rate",
        str(failure_rate),
        "--concurrency",
        str(concurrency),
    ]
    if seed is not None:
        argv += ["--seed", str(seed)]
    with expected_errors(url):
        demo_module.main(argv)  # its own asyncio.run, its own output
    prefix = "event-log" if not settings.url_given else f"event-log --url {display_url(url)}"
    click.echo(
        f"\nLook around: '{prefix} summary', '{prefix} task TASK_ID', '{prefix} tail -f'.",
        err=True,
    )


@app.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@pass_settings
def serve(settings: _Settings, host: str, port: int) -> None:
    """Serve the events API and the live page (needs the web extra: event-log[web])."""
    try:
        from event_log.web import serve as serve_web
    except ImportError as exc:
        raise click.ClickException(
            f"{exc}; install the web extra: pip install 'event-log[web]'"
        ) from None
    url = settings.url
    with expected_errors(url):
        serve_web(url.render_as_string(hide_password=False), host=host, port=port)
