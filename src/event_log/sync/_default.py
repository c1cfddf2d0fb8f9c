"""The original system's module functions, bound to a process-wide default logger.

Code written against the original ``swarm.event_log`` module calls ``log_event(...)``,
``get_task_events(...)`` and the rest as plain functions, from threads and from inside
async code, with no logger to open or close. These functions keep that: they share one
:class:`SyncEventLogger`, opened on first use from :func:`configure`'s settings (else
``$EVENT_LOG_URL``, else ``DEFAULT_URL``, as ``EventLogger.open`` resolves them), closed
(flushed) at interpreter exit, and dropped in a child after ``os.fork()``, which opens
its own on first use.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from event_log import MAX_PAGE_SIZE, Event, EventLogger, FilterKeywords, LoggerClosedError

from ._lifecycle import close_at_exit
from ._logger import Refused, SyncEventLogger

__all__ = [
    "close",
    "configure",
    "default_logger",
    "get_agent_events",
    "get_event",
    "get_event_summary",
    "get_recent_events",
    "get_task_events",
    "list_events",
    "log_event",
    "prune_events",
    "shutdown",
]

_T = TypeVar("_T")

_lock = threading.Lock()  # opening, replacing and closing the default
_default: SyncEventLogger | None = None
_settings: tuple[str | URL | None, dict[str, Any]] = (None, {})
_exited = False  # the default was closed at interpreter exit, for good
# A forked child's copies of its parent's default: kept, never used or collected.
_inherited: list[SyncEventLogger] = []


def configure(url: str | URL | None = None, **options: Any) -> None:
    """Where the default logger writes, and its ``SyncEventLogger.open`` keywords.

    Takes effect at the next call: a default already open is closed (flushed) now,
    and the next call opens one with these settings. ``configure()`` with no
    arguments goes back to ``$EVENT_LOG_URL``, else ``DEFAULT_URL``.
    """
    global _default, _settings
    with _lock:
        _settings = (url, dict(options))
        previous, _default = _default, None
    _close(previous)


def default_logger() -> SyncEventLogger:
    """The default logger the module functions use, opened now if need be.

    Use it for what the module functions lack (``emit``, cursors, filters on data);
    leave closing it to :func:`close` (or interpreter exit).
    """
    global _default
    logger = _default
    if logger is not None and not logger._closed and logger._pid == os.getpid():
        return logger
    with _lock:
        if _exited:
            raise LoggerClosedError(
                "event_log.sync's default logger was closed at interpreter exit: "
                "log before exit handlers run, or open a SyncEventLogger yourself"
            )
        if _default is None or _default._closed or _default._pid != os.getpid():
            url, options = _settings
            _default = SyncEventLogger.open(url, **options)
        return _default


def close() -> None:
    """Flush and close the default logger, if it is open; the next call opens it again."""
    global _default
    with _lock:
        previous, _default = _default, None
    _close(previous)


# The name thread pools and executors use for the same thing.
shutdown = close


def _close(logger: SyncEventLogger | None) -> None:
    if logger is not None and logger._pid == os.getpid():
        logger.close()


def _with_default(call: Callable[[SyncEventLogger], _T]) -> _T:
    """``call(the default logger)``, again on the new default when ``configure()`` or
    ``close()`` closed the one it got before it could be used (nothing was done)."""
    for _ in range(3):
        try:
            return call(default_logger())
        except Refused:
            continue
    return call(default_logger())


# -- the original system's functions, with its parameters and their order ---------------------


def log_event(
    event_type: str,
    source: str,
    task_id: str | None = None,
    agent_id: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> Event:
    """Validate, write and return one event once it is committed (``InvalidEventError``
    for a bad one, and nothing is written)."""
    return _with_default(
        lambda log: log.log_event(event_type, source, task_id=task_id, agent_id=agent_id, data=data)
    )


def get_event(event_id: str) -> Event | None:
    """The event with this id, or None."""
    return _with_default(lambda log: log.get_event(event_id))


def list_events(
    event_type: str | None = None,
    task_id: str | None = None,
    agent_id: str | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Event]:
    """Up to ``limit`` matching events, newest first, after skipping ``offset`` of them.

    ``event_type`` may also be a prefix such as ``"task.*"``. Skipping reads the
    skipped events (pages of 1,000 through keyset cursors): ``offset`` costs in
    proportion to its size. To page through many events, take
    ``default_logger().list_events(...)`` and follow its ``next_cursor``: each page
    then costs the same at any depth.
    """
    _check_count("limit", limit)
    _check_count("offset", offset)
    filters: FilterKeywords = {
        "event_type": event_type,
        "task_id": task_id,
        "agent_id": agent_id,
        "source": source,
    }
    if limit == 0:
        return []
    return _with_default(
        lambda log: log._call(
            "list_events", lambda alog: _skip_and_take(alog, filters, limit, offset)
        )
    )


async def _skip_and_take(
    log: EventLogger, filters: FilterKeywords, limit: int, offset: int
) -> list[Event]:
    """Newest first: skip ``offset`` matching events, then take ``limit``, page by page."""
    taken: list[Event] = []
    skip = offset
    cursor: str | None = None
    while len(taken) < limit:
        size = min(MAX_PAGE_SIZE, skip + limit - len(taken))
        page = await log.list_events(limit=size, cursor=cursor, **filters)
        events = page.events
        if skip:
            skipped = min(skip, len(events))
            skip -= skipped
            events = events[skipped:]
        taken.extend(events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    return taken[:limit]


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")


def get_task_events(task_id: str) -> list[Event]:
    """Every event of one task, oldest first: its full timeline."""
    return _with_default(lambda log: log.get_task_events(task_id))


def get_agent_events(agent_id: str) -> list[Event]:
    """One agent's newest 100 events, newest first (``list_events(agent_id=..., limit=...,
    offset=...)`` reaches further back)."""
    return _with_default(lambda log: log.get_agent_events(agent_id))


def get_recent_events(minutes: float = 60) -> list[Event]:
    """Events of the last ``minutes`` minutes, newest first: the newest 1,000 of them."""
    return _with_default(lambda log: log.get_recent_events(minutes))


def get_event_summary(minutes: float = 60) -> dict[str, int]:
    """Event type to count over the last ``minutes`` minutes, largest count first."""
    return _with_default(lambda log: log.get_event_summary(minutes))


def prune_events(older_than_days: float = 30) -> int:
    """Delete events older than ``older_than_days`` days; return how many were deleted."""
    return _with_default(lambda log: log.prune_events(older_than_days))


# -- exit and fork ---------------------------------------------------------------------------


def _close_at_exit() -> None:
    global _default, _exited
    with _lock:
        _exited = True
        previous, _default = _default, None
    if previous is not None and previous._pid == os.getpid():
        close_at_exit(previous)


def _after_fork_in_child() -> None:
    global _default, _lock
    if _default is not None:
        _inherited.append(_default)
    _default = None
    _lock = threading.Lock()  # a parent's thread may have held it at the fork


# Registered at import (creating nothing), so it runs after the exit handlers a program
# registers later, which may still log.
atexit.register(_close_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
