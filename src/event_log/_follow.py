"""follow(): a live tail of the log, in commit order, each event exactly once.

Why not timestamps: a transaction that took its timestamps (and UUIDv7 ids)
earlier can commit after one that took them later, so a reader that
remembers "the newest timestamp I saw" would skip such an event for good.
Each kind of database keeps a commit order instead (``_commit_order``): a
counter row on SQLite and MariaDB, transaction ids and snapshots on
PostgreSQL, whose writers then never wait for each other. A follower reads
"everything committed after my position" and moves its position past what it
read, so it never misses or repeats a row. Its position after the last event
it yielded is :attr:`Follower.cursor`, which ``follow(cursor=...)`` resumes
from, in this process or another.

Latency: events this logger writes wake the follower as soon as they commit
(milliseconds). On PostgreSQL writers also send a NOTIFY after their commits
(at most one per logger every few milliseconds, outside the data
transaction), which one LISTEN connection per logger turns into the same
wake-up, so events of other loggers and processes arrive within milliseconds
too. On SQLite (no notifications between processes) they are found by
polling every ``poll_interval`` seconds (0.25 by default); polling also runs
on PostgreSQL, as a safety net for writers that do not notify. PostgreSQL's
LISTEN connection is reopened whenever it is lost, and every follower then
reads what it missed (``backends.postgresql._listen``).

Failures: a follower rides out transient ones (a lost connection, a server
that cannot be reached, a statement timeout, a lock not granted): it tries
the read again, after 0.05 s doubling up to 2 s, on a new connection (the
pool's pre-ping replaces a dead one), and carries on from its position, so
no event is skipped or repeated. Only when reads keep failing for
``RETRY_FOR`` seconds (30) on end, or fail for another reason (a missing
table, a permission), does ``__anext__`` raise :class:`StorageError`; that
ends an ``async for`` loop, but the follower stays usable: iterating it again
resumes after the last event it yielded, each event still exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from ._commit_order import (
    CommitOrder,
    FollowPosition,
    ReadRows,
    StoredPosition,
    decode_cursor,
    encode_cursor,
)
from ._errors import (
    InvalidCursorError,
    StorageError,
    plain_reason,
    transient,
    translate_storage_errors,
)
from ._filters import EventFilter
from ._models import Event
from ._queries import (
    CursorCodec,
    Position,
    event_by_id_statement,
    list_statement,
    row_to_event,
    storable_text,
)
from ._tail_reads import TailReads

if TYPE_CHECKING:
    from ._database import Database
    from ._writer import Writer
    from .backends import Listener

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "RETRY_FOR",
    "Follower",
    "FollowerRegistry",
    "follow_start",
]

DEFAULT_POLL_INTERVAL = 0.25
_PAGE = 500
# A follower's transient failures are tried again for this many seconds on end
# (then __anext__ raises), after RETRY_FIRST_DELAY doubling up to RETRY_MAX_DELAY.
RETRY_FOR = 30.0
RETRY_FIRST_DELAY = 0.05
RETRY_MAX_DELAY = 2.0
# Reads of a follower draining for close() are tried this many times.
CLOSE_TRIES = 3

_log = logging.getLogger("event_log")
T = TypeVar("T")


class Follower(AsyncIterator[Event]):
    """The iterator ``EventLogger.follow()`` returns (see the module for what it does
    when the database fails)."""

    def __init__(
        self,
        db: Database,
        writer: Writer,
        flt: EventFilter,
        *,
        position: Position | None,
        event_id: str | None,
        resume: FollowPosition | None,
        poll_interval: float,
        on_done: Any,
        listen: Any,
        read: ReadRows,
    ) -> None:
        self._db = db
        self._writer = writer
        self._filter = flt
        self._order: CommitOrder = db.backend.commit_order
        self._reader = self._order.reader(db.backend, flt, _PAGE)
        self._listed = position  # stored events after this (timestamp, id) come first
        self._event_id = event_id  # ...or after this event's position
        self._resume = resume  # ...or carry on from a follower's cursor
        self._poll_interval = poll_interval
        self._on_done = on_done
        self._listen = listen
        self._rows = read
        self._wake = asyncio.Event()
        # Set once iteration has begun: cursor is the starting position from then on.
        self.began = asyncio.Event()
        self._buffer: deque[tuple[Event, FollowPosition]] = deque()
        self._started = False
        self._live: FollowPosition | None = None  # the commit position read up to
        self._yielded: FollowPosition | None = None  # the position after the last yield
        self._start_position: FollowPosition | None = None
        self._stored_done = True
        self._end: FollowPosition | None = None  # set when the logger closes
        self._finished = False
        self._closing = False  # the logger is closing: no more waiting out failures
        # One fetch at a time: the consumer's and close()'s must not interleave.
        self._lock = asyncio.Lock()

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> Event:
        if not self._started:
            async with self._lock:
                if not self._started and not self._finished:
                    await self._patiently("following events", self._start)
        while not self._buffer:
            if self._finished:
                raise StopAsyncIteration
            # Cleared before reading, so a commit landing after the read still wakes us.
            self._wake.clear()
            async with self._lock:
                fetched = not self._finished and await self._fetch()
            if not fetched and not self._finished:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that lands just as the wait finishes.
                with contextlib.suppress(TimeoutError):  # time to poll for other writers
                    async with asyncio.timeout(self._poll_interval):
                        await self._wake.wait()
        event, self._yielded = self._buffer.popleft()
        return event

    @property
    def cursor(self) -> str | None:
        """Where this follower is: just after the last event it yielded (before the
        first, where it began); None until iteration begins.

        ``follow(cursor=...)`` resumes exactly there, each later event exactly
        once, from any logger on the same database (the filter is not part of
        the cursor: pass the same one again).
        """
        if self._yielded is None:
            return None
        return encode_cursor(self._order, self._yielded)

    @property
    def start_event_id(self) -> str | None:
        """The event id the follow was asked to start after (its ``cursor``, when that was
        neither a follower's cursor nor a ``list_events`` one); None otherwise."""
        return self._event_id

    @property
    def start_cursor(self) -> str | None:
        """Where this follower began (``began`` is set from then on), as a cursor."""
        if self._start_position is None:
            return None
        return encode_cursor(self._order, self._start_position)

    async def aclose(self) -> None:
        """Stop following (what ``break`` out of ``async for`` leaves to the collector)."""
        self._finish()
        self._buffer.clear()

    async def __aenter__(self) -> Follower:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._writer.remove_listener(self._wake)
            self._on_done(self)

    async def _scalar_rows(self, stmt: Any, *, patient: bool = True) -> list[Any]:
        if not patient:
            return await self._read(stmt)
        return await self._patiently("following events", lambda: self._read(stmt))

    async def _patiently(self, action: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``, tried again while it fails transiently, for ``RETRY_FOR`` s on end.

        Reads have no effect and the position moves only once one succeeded,
        so a retry carries on exactly where the failed try would have.
        """
        delay = RETRY_FIRST_DELAY
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await work()
            except (StorageError, SQLAlchemyError, OSError) as exc:
                if not transient(exc) or self._finished or self._closing:
                    if isinstance(exc, StorageError):
                        raise
                    raise StorageError(f"{action} failed: {plain_reason(exc)}") from exc
                now = loop.time()
                if failing_since is None:
                    failing_since = now
                    _log.warning(
                        "event_log: %s: %s; trying again (for up to %g s)",
                        action,
                        plain_reason(exc),
                        RETRY_FOR,
                    )
                elif now - failing_since >= RETRY_FOR:
                    raise StorageError(
                        f"{action} failed: {plain_reason(exc)}, for {RETRY_FOR:g} s on end; "
                        "iterate the follower again to resume after the last event it yielded"
                    ) from _driver_error(exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)

    def wake(self) -> None:
        self._wake.set()

    async def _start(self) -> None:
        self._writer.add_listener(self._wake)
        await self._listen()
        if isinstance(self._resume, StoredPosition):
            self._listed, self._live = self._resume.listed, self._resume.live
        elif self._resume is not None:
            self._live = self._resume
        else:
            if self._event_id is not None:
                stmt = event_by_id_statement(self._event_id)
                rows = await self._scalar_rows(stmt, patient=False)
                if not rows:
                    raise InvalidCursorError(f"no event has the id {self._event_id!r}")
                found = row_to_event(rows[0])
                self._listed = (found.timestamp, found.id)
            self._live = await self._order.now(self._read)
        self._stored_done = self._listed is None
        self._yielded = (
            self._live if self._listed is None else StoredPosition(self._listed, self._live)
        )
        self._start_position = self._yielded
        self._started = True
        self.began.set()

    async def _read(self, stmt: Any, params: Mapping[str, Any] | None = None) -> list[Any]:
        with translate_storage_errors("following events"):
            return list(await self._rows(stmt, params))

    async def _fetch(self, *, patient: bool = True) -> bool:
        """Fill the buffer with the next page; False when there was nothing new."""
        assert self._live is not None
        if not self._stored_done:
            assert self._listed is not None
            stmt = list_statement(
                self._filter,
                self._db.backend,
                newest_first=False,
                after=self._listed,
                limit=_PAGE,
            ).where(self._order.committed_by(self._live))
            rows = await self._scalar_rows(stmt, patient=patient)
            events = [row_to_event(row) for row in rows]
            if events:
                self._listed = (events[-1].timestamp, events[-1].id)
                live = self._live
                self._buffer.extend(
                    (event, StoredPosition((event.timestamp, event.id), live)) for event in events
                )
            if len(events) < _PAGE:
                self._stored_done = True
                if events:  # after the last stored event: where the live part starts
                    self._buffer[-1] = (self._buffer[-1][0], self._live)
            if events:
                return True
        live = self._live

        async def read() -> Any:
            return await self._reader.read(self._read, live, until=self._end)

        rows, position = await (self._patiently("following events", read) if patient else read())
        self._live = position
        self._buffer.extend((row_to_event(row), after) for row, after in rows)
        return bool(rows)

    async def drain_for_close(self) -> None:
        """Fetch every matching event committed so far, then end after yielding them.

        Called by ``EventLogger.close()`` while the database is still open.
        """
        self._closing = True
        async with self._lock:
            if self._finished:
                return
            if self._started:
                await self._drain()
            # else iteration never began: nothing was committed "after" it.
            self._finish()
            self._wake.set()

    async def _drain(self) -> None:
        """Read up to now. A transient failure (a connection lost just now) is tried
        again a few times at once, on a new connection: closing cannot wait long."""
        for attempt in range(1, CLOSE_TRIES + 1):
            try:
                if self._end is None:
                    self._end = await self._order.now(self._read)
                while await self._fetch(patient=False):
                    pass
                return
            except (StorageError, SQLAlchemyError, OSError) as exc:
                if not transient(exc) or attempt == CLOSE_TRIES:
                    raise
            await asyncio.sleep(RETRY_FIRST_DELAY)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's failure under a StorageError (what ``__cause__`` should be)."""
    if isinstance(exc, StorageError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


class FollowerRegistry:
    """The logger's live followers, held weakly (an abandoned iterator is collected),
    and the backend's listener that wakes them (PostgreSQL's LISTEN)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._followers: weakref.WeakSet[Follower] = weakref.WeakSet()
        self._listener: Listener | None = None
        self._listening: asyncio.Lock = asyncio.Lock()
        self._no_listener = False  # the backend has no wake-ups: followers poll
        self.reads = TailReads(db)

    def add(self, follower: Follower) -> None:
        self._followers.add(follower)

    def discard(self, follower: Follower) -> None:
        self._followers.discard(follower)

    def wake_all(self, *_: object) -> None:
        """The backend's wake-up: some writer committed."""
        for follower in list(self._followers):
            follower.wake()

    async def listen(self) -> None:
        """Start the backend's wake-ups for commits of other processes (once per logger;
        where there are none, followers poll)."""
        if self._listener is not None or self._no_listener:
            return
        async with self._listening:
            if self._listener is not None or self._no_listener:
                return
            with translate_storage_errors("listening for commits"):
                self._listener = await self._db.backend.listen(self._db, self.wake_all)
            self._no_listener = self._listener is None

    async def close(self) -> None:
        """Let every follower yield what was committed, then stop listening (also when
        draining failed: the listener would otherwise keep reopening its connection)."""
        try:
            for follower in list(self._followers):
                await follower.drain_for_close()
        finally:
            try:
                if self._listener is not None:
                    listener, self._listener = self._listener, None
                    await listener.close()
            finally:
                await self.reads.close()


def follow_start(
    cursors: CursorCodec, order: CommitOrder, cursor: str | None
) -> tuple[Position | None, str | None, FollowPosition | None]:
    """Where a follow with ``cursor`` begins: a position in ``(timestamp, id)`` order,
    an event id to look up, or a follower's own position (its :attr:`Follower.cursor`).

    A ``list_events`` cursor issued for ``newest_first=True`` is refused as
    such (it cannot follow forwards); anything that is no cursor is taken as
    an id.
    """
    if cursor is None:
        return None, None, None
    try:
        return cursors.decode(cursor, newest_first=False), None, None
    except InvalidCursorError:
        try:
            cursors.decode(cursor, newest_first=True)
        except InvalidCursorError:
            pass
        else:
            raise  # a real cursor, for the other direction
    if not isinstance(cursor, str) or not cursor or not storable_text(cursor):
        raise InvalidCursorError(
            "cursor must be a follower's cursor, a list_events cursor or an event id"
        )
    resume = decode_cursor(order, cursor)
    if resume is not None:
        return None, None, resume
    return None, cursor, None
