"""Reading: ``query``, ``task``, ``agent`` and ``tail`` (with ``-f``, following)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from event_log import Event, EventFilter, EventLogger, InvalidCursorError

from . import _output
from ._filter_options import filter_from_options, filter_options
from ._runtime import CliError, Listing, Settings, open_log, pass_settings, run

__all__ = ["agent", "query", "tail", "task"]

# Events a listing shows when neither --limit nor --all is given.
DEFAULT_LIMIT = 100


def limit_options(func: Any) -> Any:
    """``-n/--limit`` and ``--all``: the same two options on every listing command."""
    func = click.option(
        "--all",
        "everything",
        is_flag=True,
        help="Every matching event (read page by page and streamed).",
    )(func)
    return click.option(
        "--limit",
        "-n",
        type=click.IntRange(min=1),
        help=f"At most this many events (default {DEFAULT_LIMIT}); stderr says when more match.",
    )(func)


def pick_limit(limit: int | None, everything: bool) -> int | None:
    """The cap a listing stops at: None for --all."""
    if everything and limit is not None:
        raise click.UsageError("use either --all or --limit")
    return None if everything else (limit or DEFAULT_LIMIT)


@click.command()
@filter_options
@limit_options
@click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def query(
    settings: Settings,
    /,
    limit: int | None,
    everything: bool,
    oldest_first: bool,
    fmt: str | None,
    **filter_args: Any,
) -> None:
    """List events matching the filters, newest first."""
    cap = pick_limit(limit, everything)
    flt = filter_from_options(filter_args)
    url = settings.url
    out = _output.EventStream(_output.pick_format(fmt))
    listing: Listing | None = None

    async def go() -> None:
        nonlocal listing
        async with open_log(url) as log:
            listing = Listing(log, flt, newest_first=not oldest_first, limit=cap)
            async for event in listing:
                out.write(event)

    run(go(), url=url)
    out.close()
    if listing is not None:
        listing.say_if_more()


@click.command()
@click.argument("task_id")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def task(settings: Settings, task_id: str, fmt: str | None) -> None:
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


@click.command()
@click.argument("agent_id")
@limit_options
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def agent(
    settings: Settings, agent_id: str, limit: int | None, everything: bool, fmt: str | None
) -> None:
    """An agent's most recent events, newest first."""
    cap = pick_limit(limit, everything)
    url = settings.url
    out = _output.EventStream(_output.pick_format(fmt))
    listing: Listing | None = None

    async def go() -> None:
        nonlocal listing
        async with open_log(url) as log:
            listing = Listing(log, EventFilter(agent_id=agent_id), newest_first=True, limit=cap)
            async for event in listing:
                out.write(event)

    run(go(), url=url)
    if out.count == 0:
        raise CliError(f"no events for agent {agent_id!r}")
    out.close()
    if listing is not None:
        listing.say_if_more()


@click.command()
@filter_options
@click.option(
    "--lines",
    "-n",
    type=click.IntRange(0, 1000),
    default=10,
    show_default=True,
    help="How many of the newest events to show first (as in tail(1), -n counts lines here).",
)
@click.option("--follow", "-f", is_flag=True, help="Then follow new events until Ctrl-C.")
@_output.format_option(*_output.EVENT_FORMATS)
@pass_settings
def tail(
    settings: Settings, /, lines: int, follow: bool, fmt: str | None, **filter_args: Any
) -> None:
    """The newest events, oldest of them first; with -f, then new ones as they commit."""
    flt = filter_from_options(filter_args)
    url = settings.url
    out = _output.EventStream(_output.pick_format(fmt), lines=True)

    async def go() -> None:
        async with open_log(url) as log:
            last: list[Event] = []
            if lines:
                page = await log.list_events(filter=flt, limit=lines)
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
    log: EventLogger, flt: EventFilter, cursor: str | None, out: _output.EventStream
) -> None:
    events = log.follow(filter=flt, cursor=cursor)
    try:
        async for event in events:
            out.write(event)
    finally:
        aclose = getattr(events, "aclose", None)  # stop it now, not when collected
        if aclose is not None:
            await aclose()
