"""SyncEventLogger: :class:`~event_log.EventLogger` for blocking code.

Every method blocks until the ``EventLogger`` method of the same name, run on the
logger's own event loop (a daemon thread, see ``_loop``), has finished, and returns
what it returns or raises what it raises: the same values, the same exception classes.
``emit()`` is the exception: the ``EventLogger``'s is already safe to call from any
thread, so it is called directly and never waits for the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar, Unpack

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from event_log import (
    Event,
    EventFilter,
    EventLogger,
    FilterKeywords,
    HistogramBucket,
    HistogramGroup,
    ImportResult,
    LoggerClosedError,
    NewEvent,
    Page,
    PrunePreview,
    RetentionPolicy,
    WriterStats,
)

from ._lifecycle import forget, remember
from ._loop import LoopThread

__all__ = ["Refused", "SyncEventLogger", "SyncFollower"]

_T = TypeVar("_T")
_log = logging.getLogger("event_log")

# EventLogger.open's own default, read from it so the two never disagree.
_MAX_DATA_BYTES: int = inspect.signature(EventLogger.open).parameters["max_data_bytes"].default
# How long close() lets calls still running on the loop finish after the EventLogger
# closed (they end at once: writes are flushed, followers drained) before it cancels them.
_CLOSE_GRACE_SECONDS = 10.0


class Refused(LoggerClosedError):
    """The logger was closed before the call was handed to its loop: nothing was done."""


class SyncEventLogger:
    """Log, query and prune events from blocking code; safe to share between threads.

    The blocking mirror of :class:`~event_log.EventLogger`: the same methods and
    properties, arguments, return values and exceptions. Made by :meth:`open`
    (``with SyncEventLogger.open(url) as log:``, or ``close()`` it yourself), it runs
    one ``EventLogger`` on an event loop in a daemon thread it owns, so any number of
    threads may call it at once, and so may code running inside some other event loop
    (the call blocks that loop, but cannot deadlock it). A call made on the logger's
    own thread (from a logging handler the logger triggers, say) raises
    ``RuntimeError`` instead of waiting for itself; ``emit()`` works everywhere.
    A logger still open at interpreter exit is closed then (pending writes flushed).
    After ``os.fork()`` the child cannot use its parent's logger (``LoggerClosedError``):
    it opens one of its own.
    """

    def __init__(self, logger: EventLogger, runner: LoopThread) -> None:
        """Use :meth:`open`: it makes the loop thread and the ``EventLogger`` on it."""
        self._logger = logger
        self._runner = runner
        self._pid = runner.pid
        self._state = threading.Lock()  # _closed against new submissions
        self._closing = threading.Lock()  # held for the whole of close()
        self._closed = False
        self._stopped = False
        # Touched only on the loop's thread: calls in flight, live followers.
        self._inflight: set[asyncio.Task[Any]] = set()
        self._followers: weakref.WeakSet[SyncFollower] = weakref.WeakSet()
        remember(self)

    @classmethod
    def open(
        cls,
        url: str | URL | None = None,
        *,
        migrate: bool = True,
        max_data_bytes: int = _MAX_DATA_BYTES,
        **options: Any,
    ) -> Self:
        """Open a logger that owns its engine, its loop and its thread.

        The arguments are ``EventLogger.open``'s: ``url`` falls back to
        ``$EVENT_LOG_URL``, then ``DEFAULT_URL``; ``migrate`` upgrades the schema
        first; ``options`` are the ``EventLogger`` keywords. An unreachable database
        fails here with one ``StorageError``, and no thread is left running.
        """
        runner = LoopThread(name="event_log.sync")

        async def opening() -> EventLogger:
            return await EventLogger.open(
                url, migrate=migrate, max_data_bytes=max_data_bytes, **options
            )

        try:
            logger = _wait(runner.submit(opening()))
        except BaseException:
            runner.stop()
            raise
        return cls(logger, runner)

    # -- the bridge to the loop --------------------------------------------------------

    def _check_process(self) -> None:
        # A child after fork() has a copy of this logger, without its thread and with
        # locks a parent's thread may have held at the fork: none of it is usable.
        if os.getpid() != self._pid:
            raise LoggerClosedError(
                f"this logger belongs to process {self._pid} (it was opened before a fork): "
                "open another one in this process"
            )

    def _check_caller(self, name: str) -> None:
        self._check_process()
        if self._runner.in_loop_thread():
            raise RuntimeError(
                f"SyncEventLogger.{name}() was called on the logger's own event-loop thread, "
                "where it would wait for itself forever: call it from another thread "
                "(emit() works on any thread)"
            )

    async def _on_loop(self, fn: Callable[[EventLogger], Awaitable[_T]]) -> _T:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            return await fn(self._logger)
        finally:
            self._inflight.discard(task)

    def _submit(
        self, name: str, fn: Callable[[EventLogger], Awaitable[_T]]
    ) -> concurrent.futures.Future[_T]:
        self._check_caller(name)
        with self._state:
            if self._closed:
                raise Refused("the logger is closed")
            return self._runner.submit(self._on_loop(fn))

    def _call(self, name: str, fn: Callable[[EventLogger], Awaitable[_T]]) -> _T:
        """Run ``fn(the EventLogger)`` on the loop and wait for its result."""
        return _wait(self._submit(name, fn))

    def _wait_closed(self) -> None:
        """Return once a close() under way (if any) has finished."""
        with self._closing:
            pass

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush pending writes (``emit`` included), close the logger, stop its thread.

        Idempotent. Followers yield what was committed before it returned, then stop.
        In a child process after ``fork()`` it only marks the parent's logger closed.
        """
        if os.getpid() != self._pid:
            self._closed = True  # the parent's thread and loop are not this process's
            return
        if self._runner.in_loop_thread():
            raise RuntimeError(
                "SyncEventLogger.close() was called on the logger's own event-loop thread, "
                "where it cannot wait for that thread to stop: call it from another thread"
            )
        with self._closing:
            if self._stopped:
                return
            with self._state:
                self._closed = True
            try:
                _wait(self._runner.submit(self._shutdown()))
            finally:
                self._runner.stop()
                self._stopped = True
                forget(self)

    async def _shutdown(self) -> None:
        try:
            await self._logger.close()
        finally:
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=_CLOSE_GRACE_SECONDS)
            for follower in list(self._followers):
                await follower._drain()

    # -- properties --------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        """The logger's engine; its connections belong to the logger's own event loop."""
        return self._logger.engine

    @property
    def read_only(self) -> bool:
        """Whether this is a reader's logger (see the ``read_only`` keyword)."""
        return self._logger.read_only

    @property
    def max_data_bytes(self) -> int:
        """The largest ``data`` this logger accepts, in bytes of compact UTF-8 JSON."""
        return self._logger.max_data_bytes

    @property
    def retention_failures(self) -> int:
        """Scheduled prunes that failed (each is also logged, and tried again)."""
        return self._logger.retention_failures

    @property
    def stats(self) -> WriterStats:
        """Events written, failed and still queued by this logger."""
        self._check_process()
        return self._logger.stats

    # -- writing -----------------------------------------------------------------------

    def log_event(
        self,
        event_type: str,
        source: str,
        *,
        task_id: str | None = None,
        agent_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> Event:
        """Validate, write and return one event once its transaction has committed."""
        return self._call(
            "log_event",
            lambda log: log.log_event(
                event_type,
                source,
                task_id=task_id,
                agent_id=agent_id,
                data=data,
                timestamp=timestamp,
            ),
        )

    def log_events(self, events: Iterable[NewEvent | Mapping[str, Any]]) -> list[Event]:
        """Validate every event, then commit them all in one transaction, or none."""
        items = _read_here(events)
        return self._call("log_events", lambda log: log.log_events(items))

    def emit(
        self,
        event_type: str,
        source: str,
        *,
        task_id: str | None = None,
        agent_id: str | None = None,
        data: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        block: bool = True,
    ) -> Event:
        """Validate now, queue the write, return at once; ``flush()`` waits for it.

        ``EventLogger.emit`` itself, called in this thread: no hop to the loop. With
        ``max_queued`` events waiting it blocks until there is room (or, with
        ``block=False``, raises ``QueueFullError``).
        """
        self._check_process()
        if self._closed:
            raise LoggerClosedError("the logger is closed")
        return self._logger.emit(
            event_type,
            source,
            task_id=task_id,
            agent_id=agent_id,
            data=data,
            timestamp=timestamp,
            block=block,
        )

    def flush(self) -> None:
        """Wait until every event queued so far (``emit`` included) is committed or failed."""
        self._call("flush", lambda log: log.flush())

    def import_events(
        self, events: Iterable[Event | Mapping[str, Any]], *, skip_invalid: bool = False
    ) -> ImportResult:
        """Write events as they were, keeping their ids and timestamps; ids already
        stored are skipped (see ``EventLogger.import_events``)."""
        items = _read_here(events)
        return self._call(
            "import_events", lambda log: log.import_events(items, skip_invalid=skip_invalid)
        )

    # -- reading -----------------------------------------------------------------------

    def get_event(self, event_id: str) -> Event | None:
        """The event with this id, or None (also for an id that is not a well-formed string)."""
        return self._call("get_event", lambda log: log.get_event(event_id))

    def list_events(
        self,
        *,
        filter: EventFilter | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = True,
        **filters: Unpack[FilterKeywords],
    ) -> Page:
        """One page of matching events in ``(timestamp, id)`` order; follow ``next_cursor``."""
        return self._call(
            "list_events",
            lambda log: log.list_events(
                filter=filter, limit=limit, cursor=cursor, newest_first=newest_first, **filters
            ),
        )

    def count_events(
        self, *, filter: EventFilter | None = None, **filters: Unpack[FilterKeywords]
    ) -> int:
        """How many events match ``filter`` (or the filter keywords of :meth:`list_events`)."""
        return self._call("count_events", lambda log: log.count_events(filter=filter, **filters))

    def get_task_events(self, task_id: str) -> list[Event]:
        """Every event of one task, oldest first: its full timeline, uncapped."""
        return self._call("get_task_events", lambda log: log.get_task_events(task_id))

    def get_agent_events(self, agent_id: str, *, limit: int = 100) -> list[Event]:
        """One agent's newest events, newest first."""
        return self._call(
            "get_agent_events", lambda log: log.get_agent_events(agent_id, limit=limit)
        )

    def get_recent_events(self, minutes: float = 60, *, limit: int = 1000) -> list[Event]:
        """Events of the last ``minutes`` minutes, newest first."""
        return self._call(
            "get_recent_events", lambda log: log.get_recent_events(minutes, limit=limit)
        )

    def get_event_summary(self, minutes: float = 60) -> dict[str, int]:
        """Event type to count over the last ``minutes`` minutes, largest count first."""
        return self._call("get_event_summary", lambda log: log.get_event_summary(minutes))

    def get_event_histogram(
        self,
        *,
        every: timedelta,
        by: HistogramGroup | None = None,
        filter: EventFilter | None = None,
        **filters: Unpack[FilterKeywords],
    ) -> list[HistogramBucket]:
        """Counts per time bucket of ``every`` from ``since`` to ``until`` (default now)."""
        return self._call(
            "get_event_histogram",
            lambda log: log.get_event_histogram(every=every, by=by, filter=filter, **filters),
        )

    def follow(
        self,
        *,
        filter: EventFilter | None = None,
        cursor: str | None = None,
        **filters: Unpack[FilterKeywords],
    ) -> SyncFollower:
        """Matching events as they commit, oldest first, each exactly once: an iterator.

        As ``EventLogger.follow``: iteration begins at the first ``next()``; a bad
        filter or cursor raises here. ``next()`` blocks until an event commits. It
        ends after yielding what was committed before ``close()`` returned; its own
        ``close()``, leaving a ``with`` block, or dropping it (``break``) stops it.
        """

        async def start(log: EventLogger) -> SyncFollower:
            follower = SyncFollower(self, log.follow(filter=filter, cursor=cursor, **filters))
            self._followers.add(follower)
            return follower

        return self._call("follow", start)

    # -- retention ---------------------------------------------------------------------

    def prune_events(
        self,
        older_than_days: float = 30,
        *,
        overrides: Mapping[str, float] | None = None,
    ) -> int:
        """Delete events older than ``older_than_days`` days in short batches; return the count."""
        return self._call(
            "prune_events", lambda log: log.prune_events(older_than_days, overrides=overrides)
        )

    def ensure_partitions(self, *, ahead: int | None = None) -> list[str]:
        """Create the partitions of the current period and ``ahead`` more; return the new ones."""
        return self._call("ensure_partitions", lambda log: log.ensure_partitions(ahead=ahead))

    def reclaim_space(self) -> int:
        """Hand the pages pruning freed back to the file system; return how many."""
        return self._call("reclaim_space", lambda log: log.reclaim_space())

    def preview_prune(
        self, older_than_days: float = 30, *, overrides: Mapping[str, float] | None = None
    ) -> list[PrunePreview]:
        """What ``prune_events`` with these arguments would delete now, rule by rule."""
        return self._call(
            "preview_prune", lambda log: log.preview_prune(older_than_days, overrides=overrides)
        )

    def prune_as_previewed(
        self,
        preview: Sequence[PrunePreview],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """``prune_events`` with exactly the cutoffs ``preview`` counted.

        ``on_progress(deleted so far)`` runs in the caller's thread (never on the
        logger's), so it may call this logger; if it raises, the batches stop after
        the current one before the exception reaches the caller.
        """
        if on_progress is None:
            return self._call("prune_as_previewed", lambda log: log.prune_as_previewed(preview))
        progress: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        started, finished = threading.Event(), threading.Event()

        async def prune(log: EventLogger) -> int:
            started.set()
            try:
                return await log.prune_as_previewed(preview, on_progress=progress.put)
            finally:
                finished.set()

        future = self._submit("prune_as_previewed", prune)
        future.add_done_callback(lambda _done: progress.put(None))
        try:
            while (deleted := progress.get()) is not None:
                on_progress(deleted)
        except BaseException:
            future.cancel()
            if started.is_set():
                finished.wait()
            raise
        return _wait(future)

    def apply_retention(self, policy: RetentionPolicy) -> int:
        """``prune_events`` with a policy's days and overrides."""
        return self._call("apply_retention", lambda log: log.apply_retention(policy))


class SyncFollower(Iterator[Event]):
    """What :meth:`SyncEventLogger.follow` returns: a blocking iterator of events.

    One thread at a time iterates it. Stopping it (``close()``, the end of a
    ``with`` block, or being dropped after a ``break``) stops the ``EventLogger``
    follower behind it on the logger's loop.
    """

    def __init__(self, owner: SyncEventLogger, follower: AsyncIterator[Event]) -> None:
        self._owner = owner
        self._follower = follower
        self._lock = threading.Lock()  # one next() at a time
        # What the logger's close() drained for this iterator, yielded before it ends.
        self._drained: deque[Event] = deque()
        self._done = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        with self._lock:
            if self._drained:
                return self._drained.popleft()
            if self._done:
                raise StopIteration
            try:
                return self._owner._call("follow", lambda _log: anext(self._follower))
            except StopAsyncIteration:
                self._done = True
                raise StopIteration from None
            except Refused:
                # The logger closed: what it had committed by then was drained for us.
                self._owner._wait_closed()
                if self._drained:
                    return self._drained.popleft()
                self._done = True
                raise StopIteration from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop following; ``next()`` then raises ``StopIteration``."""
        self._done = True
        self._drained.clear()
        owner = self._owner
        if owner._closed or os.getpid() != owner._pid:
            return  # closing the logger ended the follower already (or it is the parent's)
        if owner._runner.in_loop_thread():
            self._stop_later()
            return
        with contextlib.suppress(Refused):  # the logger closed meanwhile, ending it
            owner._call("follow", lambda _log: self._aclose())

    def __del__(self) -> None:
        # Never wait here: the collector may run on any thread, holding any lock.
        if not self._done:
            self._done = True
            self._stop_later()

    def _stop_later(self) -> None:
        owner = self._owner
        if owner._stopped or os.getpid() != owner._pid:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile, ending it
            owner._runner.submit(self._aclose())

    async def _aclose(self) -> None:
        aclose = getattr(self._follower, "aclose", None)
        if aclose is not None:
            await aclose()

    async def _drain(self) -> None:
        """On the loop, once the logger closed: keep what the follower still holds."""
        if not self._done:
            async for event in self._follower:
                self._drained.append(event)


def _wait(future: concurrent.futures.Future[_T]) -> _T:
    """The result of a call handed to the loop, as if it had run here."""
    try:
        return future.result()
    except concurrent.futures.CancelledError:
        raise LoggerClosedError("the logger closed before this call finished") from None
    except BaseException:
        future.cancel()  # interrupted while waiting (Ctrl-C): stop the call too
        raise


def _read_here(events: Iterable[_T]) -> Iterable[_T]:
    """``events`` as a list read in the caller's thread (a generator over a file or a
    cursor may belong to it); what is not an iterable of events goes on as it is, to be
    refused as the ``EventLogger`` refuses it."""
    if isinstance(events, str | bytes | Mapping | list | tuple) or not isinstance(events, Iterable):
        return events
    return list(events)
