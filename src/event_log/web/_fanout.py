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
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from event_log import (
    Event,
    EventFilter,
    EventLogError,
    EventLogger,
    InvalidCursorError,
    LoggerClosedError,
    StorageError,
)

from ._models import ErrorBody

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MAX_LAG",
    "DEFAULT_MAX_STREAMS",
    "FINAL_WAIT",
    "LAGGED_EVENT",
    "LAGGED_WAIT",
    "Follower",
    "Frame",
    "StreamHub",
    "StreamLimitError",
    "Subscription",
]

_log = logging.getLogger("event_log.web")

DEFAULT_MAX_STREAMS = 1000
DEFAULT_MAX_LAG = 2000
DEFAULT_HISTORY = 10_000
# The held frames' encoded size at most (events carry up to their data limit each).
HISTORY_BYTES = 64 * 2**20
# The SSE event name of the message that ends a stream whose client fell behind.
LAGGED_EVENT = "lagged"
# Seconds the last message of a stream may take to reach its client: a client
# that is not reading is let go without it. A client cut off for lagging may
# still be reading slowly, so it gets longer; a stopping server cannot wait.
LAGGED_WAIT = 10.0
FINAL_WAIT = 1.0
# Seconds a subscription waits for its own follower's first read to begin.
_START_WAIT = 5.0
# Seconds a stopped follower of a subscription gets to finish a read in flight.
_STOP_TIMEOUT = 5.0
_KEEP_ALIVE = b": keep-alive\n\n"


class Follower(Protocol):
    """What the hub uses of the follower ``EventLogger.follow()`` returns."""

    began: asyncio.Event

    @property
    def cursor(self) -> str | None: ...

    @property
    def start_cursor(self) -> str | None: ...

    @property
    def start_event_id(self) -> str | None: ...

    def __anext__(self) -> Awaitable[Event]: ...

    async def aclose(self) -> None: ...


class StreamLimitError(EventLogError):
    """The server holds as many streams as it may: a client should try again later."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One event as the stream sends it, shared by every client that wants it.

    Only the encoded message is kept (the hub holds thousands): the event is
    decoded again from it in the rare case a resuming client needs it matched.
    """

    index: int  # the hub's running number of this frame
    position: str  # the stream's position after this event (a follower cursor)
    sse: bytes  # the whole SSE message

    def event(self) -> Event:
        return Event.model_validate_json(self.sse.partition(b"\ndata: ")[2])


def encode_frame(event: Event, position: str) -> bytes:
    """The SSE message of ``event``: compact JSON escapes newlines, so one ``data:`` line."""
    return f"id: {position}\ndata: {event.model_dump_json()}\n\n".encode()


def _message(kind: str, detail: str, **fields: str) -> bytes:
    body = ErrorBody(detail=detail).model_dump() | fields
    return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


class Subscription:
    """One stream client: its filter, the frames waiting to be sent, how it ends.

    The response drives it: :meth:`next` gives the next bytes to send (frames
    coalesced into one write), :meth:`sent` records what reached the socket,
    and :attr:`ending` is the last message once :meth:`next` returns None.
    """

    def __init__(self, hub: StreamHub, flt: EventFilter, key: str, max_lag: int) -> None:
        self.filter = flt
        self.key = key
        self._hub = hub
        self._max_lag = max_lag
        self._queue: deque[Frame] = deque()
        self._wake = asyncio.Event()
        self.start_position: str | None = None  # where the stream starts (its opening id)
        self.sent_position: str | None = None  # the position after the last frame sent
        self._handed: str | None = None  # the position after the bytes handed out last
        self.ending: bytes | None = None  # the last message, once the stream must end
        self.ending_wait = FINAL_WAIT  # seconds that last message may take to be sent
        self._heartbeat_due = False
        self._active = False  # sent something since the last heartbeat tick
        self._interrupt: Callable[[], object] | None = None
        # Catching up from a position the hub does not hold: a follower of its own.
        self._follower: Follower | None = None
        self._pending: asyncio.Future[Event] | None = None
        self._meets_hub = False  # the hub has reached this follower's position

    @property
    def live(self) -> bool:
        """Fed by the hub (not catching up on its own)."""
        return self._follower is None

    # -- the hub's side ------------------------------------------------------------

    def offer(self, frame: Frame) -> None:
        """A matching frame from the hub; past ``max_lag`` unsent ones, the stream ends."""
        if self.ending is not None:
            return
        if len(self._queue) >= self._max_lag:
            self._queue.clear()
            position = self.sent_position or self.start_position or ""
            self.end(
                _message(
                    LAGGED_EVENT,
                    f"this client fell more than {self._max_lag} events behind; "
                    "reconnect with this cursor (or Last-Event-ID) to resume",
                    cursor=position,
                ),
                interrupt=True,
                wait=LAGGED_WAIT,
            )
            return
        self._queue.append(frame)
        self._wake.set()
        if len(self._queue) * 2 >= self._max_lag:
            self._hub.crowded = True

    def end(self, message: bytes, *, interrupt: bool = False, wait: float = FINAL_WAIT) -> None:
        """End the stream with ``message`` (the first end wins), which may take ``wait``
        seconds to send; ``interrupt`` also stops a write the client is not reading."""
        if self.ending is not None:
            return
        self.ending = message
        self.ending_wait = wait
        self._wake.set()
        if interrupt and self._interrupt is not None:
            self._interrupt()

    def hurry(self) -> None:
        """Stop whatever is being sent now, the last message included (the server stops)."""
        if self._interrupt is not None:
            self._interrupt()

    def tick(self) -> None:
        """The hub's heartbeat: a keep-alive if nothing was sent since the last tick."""
        if not self._active:
            self._heartbeat_due = True
            self._wake.set()
        self._active = False

    def meets_hub(self) -> None:
        """The hub has read up to this subscription's own follower's position."""
        self._meets_hub = True
        self._wake.set()

    # -- the response's side -------------------------------------------------------

    def while_sending(self, interrupt: Callable[[], object] | None) -> None:
        """What stops the write in flight (None once it is done)."""
        self._interrupt = interrupt

    def sent(self) -> None:
        """The bytes :meth:`next` gave last reached the server's socket."""
        if self._handed is not None:
            self.sent_position = self._handed

    async def next(self) -> bytes | None:
        """The next bytes to send, or None when the stream ends (see :attr:`ending`)."""
        while self.ending is None:
            if self._queue:
                frames = list(self._queue)
                self._queue.clear()
                self._handed = frames[-1].position
                self._active = True
                return b"".join(frame.sse for frame in frames)
            if self._heartbeat_due:
                self._heartbeat_due = False
                return _KEEP_ALIVE
            if self._follower is not None:
                chunk = await self._catch_up()
                if chunk is not None:
                    self._active = True
                    return chunk
                continue
            self._wake.clear()
            await self._wake.wait()
        return None

    # -- catching up on its own ----------------------------------------------------

    async def start_following(self, follower: Follower) -> None:
        """Catch up from a position the hub does not hold, with ``follower``."""
        self._follower = follower
        self._pending = asyncio.ensure_future(anext(follower))
        began = asyncio.ensure_future(follower.began.wait())
        try:
            await asyncio.wait(
                {self._pending, began}, timeout=_START_WAIT, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            began.cancel()
        self.start_position = follower.start_cursor

    async def _catch_up(self) -> bytes | None:
        """The next event of the own follower, or None when woken for something else."""
        assert self._follower is not None
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._follower))
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        waits: set[asyncio.Future[Any]] = {self._pending, waiter}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._pending.done():
            task, self._pending = self._pending, None
            return await self._caught(task)
        if self._meets_hub:
            return await self._hand_over()
        return None

    async def _caught(self, task: asyncio.Future[Event]) -> bytes | None:
        """What the own follower's read gave: an event (handed on with its position), or
        the end of the stream."""
        follower = self._follower
        assert follower is not None
        try:
            event = task.result()
        except StopAsyncIteration:
            await self.stop_following()
            self.end(_CLOSED)
            return None
        except (InvalidCursorError, StorageError, LoggerClosedError) as exc:
            await self.stop_following()
            self.end(_message("error", str(exc)))
            return None
        position = follower.cursor
        assert position is not None
        self._handed = position
        self._meets_hub = False
        chunk = encode_frame(event, position)
        if self._hub.holds(position):
            await self._hand_over()
        else:
            self._hub.await_position(self, position)
        return chunk

    async def _hand_over(self) -> bytes | None:
        """Stop the own follower and carry on with the hub's frames after its position
        (or, if the hub no longer holds it, with a new follower of its own from there).
        Returns the frame of an event the stopped follower's read in flight still gave."""
        self._meets_hub = False
        follower, pending = self._follower, self._pending
        assert follower is not None
        self._follower, self._pending = None, None
        self._hub.forget_catching_up(self)
        await follower.aclose()
        chunk: bytes | None = None
        if pending is not None:
            await _settle(pending)
            if pending.done() and not pending.cancelled() and pending.exception() is None:
                position = follower.cursor
                assert position is not None
                chunk = encode_frame(pending.result(), position)
                self._handed = position
        position = follower.cursor or follower.start_cursor
        if position is None or not self._hub.join_at(self, position):
            # The hub no longer holds that position (its history moved on): go on alone.
            self._follower = self._hub.log.follow(filter=self.filter, cursor=position)
            self._hub.catching_up(self)
        return chunk

    async def stop_following(self) -> None:
        """Stop the own follower, letting a read in flight finish rather than cancelling
        it (on in-memory SQLite a read cancelled mid-query loses the database)."""
        follower, pending = self._follower, self._pending
        self._follower, self._pending = None, None
        self._hub.forget_catching_up(self)
        if follower is None:
            return
        await follower.aclose()
        if pending is not None:
            await _settle(pending)
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: a late failure is not worth a warning

    def enqueue(self, frames: list[Frame]) -> None:
        """Frames the hub holds already, on joining it."""
        self._queue.extend(frames)
        if frames:
            self._wake.set()


async def _settle(pending: asyncio.Future[Event]) -> None:
    """Let a stopped follower's read in flight finish (a stopped follower returns within
    one poll interval); cancel it only if it does not."""
    await asyncio.wait({pending}, timeout=_STOP_TIMEOUT)
    if not pending.done():
        pending.cancel()
        await asyncio.wait({pending}, timeout=_STOP_TIMEOUT)


_EVERYTHING = EventFilter()
_CLOSED = b": the event log closed\n\n"
_SHUTDOWN = b": the server is shutting down\n\n"


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
            sub.end(_SHUTDOWN, interrupt=True)
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
                sub.end(_CLOSED)
        except (StorageError, LoggerClosedError, InvalidCursorError) as exc:
            self._failure = exc
            self._closed = isinstance(exc, LoggerClosedError)
            _log.warning("event_log.web: the live stream stopped: %s", exc)
            for sub in self._all():
                if sub.live:
                    sub.end(_message("error", str(exc)))
        finally:
            ready.set()
            await follower.aclose()
            if not first.done():
                await _settle(first)

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


def retry_after(exc: BaseException) -> dict[str, Any]:
    """The headers of a 503 for ``exc``: when to come back."""
    return {"Retry-After": "5" if isinstance(exc, StreamLimitError) else "1"}
