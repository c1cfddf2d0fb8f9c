"""One tail of the log for every stream client: read once, matched in memory, encoded once.

A :class:`StreamHub` follows its logger with one unfiltered follower. Each
event it reads becomes a :class:`Frame` (the SSE message, ``id:`` and
``data:``, encoded once) and is offered to every :class:`Subscription` whose
filter matches it; the filter is decided in memory once per event and
distinct filter (``EventFilter.matches``), never with a query per client. A client
costs its buffer of frames (references to the shared bytes) and, while
idle, a heartbeat.

Positions: a frame's ``id`` is the hub's follower cursor after its event, a
place in the database's commit order. The hub keeps its last ``history`` frames
(at most ``HISTORY_BYTES`` of them, encoded), so a client that resumes from one
of their positions (a reconnect after a dropped connection, or after being cut
off for lagging) is served from memory, exactly the frames it missed. A
position the hub does not hold (older, or sent by another server), an event id
and a ``list_events`` cursor are read from the database by a follower of the
subscription's own; on SQLite and MariaDB, whose positions are sequence
numbers, it hands over to the shared tail as soon as it reaches a position the
hub holds.

Bounded lag: a subscription holds at most ``max_lag`` frames not yet sent.
Past that, it ends with a ``lagged`` message naming the position of the last
frame the client was sent, and the client resumes from there when it can keep
up. A slow client never delays the hub or the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from event_log import (
    Event,
    EventFilter,
    EventLogError,
    EventLogger,
    InvalidCursorError,
    LoggerClosedError,
    StorageError,
)

from ._subscription import (
    CLOSED,
    SHUTDOWN,
    Frame,
    Subscription,
    encode_frame,
    settle,
    sse_message,
)

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_LAG",
    "DEFAULT_MAX_STREAMS",
    "HISTORY_BYTES",
    "StreamHub",
    "StreamLimitError",
]

_log = logging.getLogger("event_log.web")

DEFAULT_MAX_STREAMS = 1000
DEFAULT_MAX_LAG = 2000
DEFAULT_HISTORY = 10_000
# The held frames' encoded size at most (events carry up to their data limit each).
HISTORY_BYTES = 64 * 2**20


class StreamLimitError(EventLogError):
    """The server holds as many streams as it may: a client should try again later."""


_EVERYTHING = EventFilter()


class StreamHub:
    """The shared tail of one logger for every stream of a router (see the module)."""

    def __init__(
        self,
        log: EventLogger,
        *,
        heartbeat: float,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_lag: int = DEFAULT_MAX_LAG,
        history: int = DEFAULT_HISTORY,
    ) -> None:
        for name, value in (("max_streams", max_streams), ("max_lag", max_lag)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        self.log = log
        self.heartbeat = heartbeat
        self.max_streams = max_streams
        self.max_lag = max_lag
        self._history_size = max(history, max_lag)
        self._history: deque[Frame] = deque()
        self._history_bytes = 0
        self._positions: dict[str, int] = {}  # a held frame's position -> its index
        # Where the tail began, before its first held frame (until that one leaves).
        self._origin: tuple[str, int] | None = None
        self._next_index = 0
        self.position: str | None = None  # after the last frame (or where the tail began)
        self._groups: dict[str, tuple[EventFilter, set[Subscription]]] = {}
        self._catching_up: set[Subscription] = set()
        self._waiting: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.crowded = False  # a client's buffer is half full: let writers run
        self._closed = False  # the logger closed: no more streams
        self._shut = False  # the server is shutting down: no more streams

    @property
    def streams(self) -> int:
        """Open streams: fed by the hub or catching up."""
        return sum(len(subs) for _, subs in self._groups.values()) + len(self._catching_up)

    async def subscribe(self, flt: EventFilter, start: str | None) -> Subscription:
        """A new stream of ``flt`` from ``start`` (a position, an event id, a ``list_events``
        cursor; None for now). Raises :class:`StreamLimitError` past ``max_streams``,
        ``InvalidCursorError`` for a ``start`` that cannot be followed, ``LoggerClosedError``
        once the logger (or the server) is closing, ``StorageError`` when the tail
        cannot read."""
        if self._shut:
            raise LoggerClosedError("the server is shutting down")
        if self.streams >= self.max_streams:
            raise StreamLimitError(
                f"this server holds its limit of {self.max_streams} streams; try again shortly"
            )
        sub = Subscription(self, flt, flt.model_dump_json(), self.max_lag)
        if start is None:
            await self._running()
            assert self.position is not None
            sub.start_position = self.position
            self._add(sub)
        elif self.holds(start) and self.join_at(sub, start):
            sub.start_position = start
        else:
            await self._follow_alone(sub, start)
        self._keep_ticking()
        return sub

    async def release(self, sub: Subscription) -> None:
        """The stream ended: forget it, and stop its own follower if it has one."""
        group = self._groups.get(sub.key)
        if group is not None:
            group[1].discard(sub)
            if not group[1]:
                del self._groups[sub.key]
        await sub.stop_following()

    def shutdown(self) -> None:
        """End every stream with a last comment, and take no new ones (the server stops)."""
        self._shut = True
        for sub in self._all():
            sub.end(SHUTDOWN, interrupt=True)
            sub.hurry()

    # -- what subscriptions ask ----------------------------------------------------

    def holds(self, position: str) -> bool:
        """Whether the frames after ``position`` are all in memory."""
        return self._index_of(position) is not None

    def join_at(self, sub: Subscription, position: str) -> bool:
        """Feed ``sub`` from the hub after ``position``: False if the hub does not hold it,
        or holds more frames after it than ``sub`` may fall behind."""
        index = self._index_of(position)
        if index is None or sub.ending is not None:
            return False
        first = self._history[0].index if self._history else self._next_index
        held = list(self._history)[index + 1 - first :]
        everything = sub.filter == _EVERYTHING
        frames = [f for f in held if everything or sub.filter.matches(f.event())]
        if len(frames) > self.max_lag:
            return False
        sub.enqueue(frames)
        self.forget_catching_up(sub)
        self._add(sub)
        return True

    def await_position(self, sub: Subscription, position: str) -> None:
        """Tell ``sub`` when the hub reaches ``position`` (its own follower's)."""
        self.forget_catching_up(sub)
        self._catching_up.add(sub)
        self._waiting.setdefault(position, set()).add(sub)

    def catching_up(self, sub: Subscription) -> None:
        self._catching_up.add(sub)

    def forget_catching_up(self, sub: Subscription) -> None:
        self._catching_up.discard(sub)
        for position in [p for p, subs in self._waiting.items() if sub in subs]:
            self._waiting[position].discard(sub)
            if not self._waiting[position]:
                del self._waiting[position]

    # -- internals -----------------------------------------------------------------

    def _index_of(self, position: str) -> int | None:
        index = self._positions.get(position)
        if index is None and self._origin is not None and self._origin[0] == position:
            index = self._origin[1]
        return index

    async def _follow_alone(self, sub: Subscription, start: str) -> None:
        # A malformed cursor, or one of another kind of database, raises here.
        follower = self.log.follow(filter=sub.filter, cursor=start)
        if follower.start_event_id is not None and await self.log.get_event(start) is None:
            await follower.aclose()
            raise InvalidCursorError(
                "cursor must be a position the stream sent, an event id or a "
                "next_cursor of /events?oldest_first=true"
            )
        self._catching_up.add(sub)
        await sub.start_following(follower)

    def _add(self, sub: Subscription) -> None:
        group = self._groups.setdefault(sub.key, (sub.filter, set()))
        group[1].add(sub)

    def _all(self) -> list[Subscription]:
        fed = [sub for _, subs in self._groups.values() for sub in subs]
        return fed + list(self._catching_up)

    async def _running(self) -> None:
        """Start the tail (once) and wait until it knows where it is."""
        if self._closed:
            raise LoggerClosedError("the event log is closed")
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._failure = None
            self._task = asyncio.ensure_future(self._run(self._ready))
        assert self._ready is not None
        await self._ready.wait()
        if self._failure is not None:
            failure = self._failure
            if isinstance(failure, EventLogError):
                raise failure
            raise StorageError(f"following events failed: {failure}")

    async def _run(self, ready: asyncio.Event) -> None:
        """Read the log once, for everyone: frame each event and offer it."""
        try:
            follower = self.log.follow(cursor=self.position)
        except LoggerClosedError as exc:
            self._failure, self._closed = exc, True
            ready.set()
            return
        first = asyncio.ensure_future(anext(follower))
        try:
            began = asyncio.ensure_future(follower.began.wait())
            try:
                await asyncio.wait({first, began}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                began.cancel()
            start = follower.start_cursor
            if start is None:
                await first  # the first read failed before it began: this raises
                raise StorageError("following events failed before it began")
            if self.position != start:
                self._restart_at(start)
            ready.set()
            event = await first
            while True:
                self._publish(event, follower.cursor)
                if self.crowded:
                    # A page of events is published without a pause; when a client's
                    # buffer is half full, its writer gets a turn before the next.
                    self.crowded = False
                    await asyncio.sleep(0)
                event = await anext(follower)
        except StopAsyncIteration:
            self._closed = True
            for sub in self._all():
                sub.end(CLOSED)
        except (StorageError, LoggerClosedError, InvalidCursorError) as exc:
            self._failure = exc
            self._closed = isinstance(exc, LoggerClosedError)
            _log.warning("event_log.web: the live stream stopped: %s", exc)
            for sub in self._all():
                if sub.live:
                    sub.end(sse_message("error", str(exc)))
        finally:
            ready.set()
            await follower.aclose()
            if not first.done():
                await settle(first)

    def _restart_at(self, start: str) -> None:
        """The tail (re)starts at a position it did not end at: nothing held follows it."""
        self._history.clear()
        self._history_bytes = 0
        self._positions.clear()
        self._origin = (start, self._next_index - 1)
        self.position = start

    def _publish(self, event: Event, position: str | None) -> None:
        assert position is not None
        index = self._next_index
        self._next_index += 1
        frame = Frame(index, position, encode_frame(event, position))
        self._history.append(frame)
        self._history_bytes += len(frame.sse)
        self._positions[position] = index
        while len(self._history) > self._history_size or (
            self._history_bytes > HISTORY_BYTES and len(self._history) > 1
        ):
            old = self._history.popleft()
            self._history_bytes -= len(old.sse)
            self._positions.pop(old.position, None)
            self._origin = None
        self.position = position
        for flt, subs in list(self._groups.values()):
            if subs and flt.matches(event):
                for sub in list(subs):
                    sub.offer(frame)
        waiting = self._waiting.pop(position, None)
        if waiting:
            for sub in waiting:
                sub.meets_hub()

    def _keep_ticking(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        """Every ``heartbeat`` seconds, a keep-alive to every stream that sent nothing;
        stops when no stream is left (the next one starts it again)."""
        while self._all():
            await asyncio.sleep(self.heartbeat)
            for sub in self._all():
                sub.tick()
