"""One stream client of the shared tail: the frames it waits for, its own catch-up, its end.

A :class:`Subscription` is what the SSE response drives (see ``_fanout`` for the
tail that feeds it): frames the tail offered, coalesced into one write; when the
client resumed from a position the tail does not hold, a follower of its own
until it can join the tail; and the last message once the stream must end.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from event_log import Event, EventFilter, InvalidCursorError, LoggerClosedError, StorageError

from ._models import ErrorBody

if TYPE_CHECKING:
    from ._fanout import StreamHub

__all__ = [
    "CLOSED",
    "FINAL_WAIT",
    "LAGGED_EVENT",
    "LAGGED_WAIT",
    "SHUTDOWN",
    "Follower",
    "Frame",
    "Subscription",
    "encode_frame",
    "settle",
    "sse_message",
]

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
CLOSED = b": the event log closed\n\n"
SHUTDOWN = b": the server is shutting down\n\n"


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


def sse_message(kind: str, detail: str, **fields: str) -> bytes:
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
                sse_message(
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
            self.end(CLOSED)
            return None
        except (InvalidCursorError, StorageError, LoggerClosedError) as exc:
            await self.stop_following()
            self.end(sse_message("error", str(exc)))
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
            await settle(pending)
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
            await settle(pending)
            if pending.done() and not pending.cancelled():
                pending.exception()  # retrieved: a late failure is not worth a warning

    def enqueue(self, frames: list[Frame]) -> None:
        """Frames the hub holds already, on joining it."""
        self._queue.extend(frames)
        if frames:
            self._wake.set()


async def settle(pending: asyncio.Future[Event]) -> None:
    """Let a stopped follower's read in flight finish (a stopped follower returns within
    one poll interval); cancel it only if it does not."""
    await asyncio.wait({pending}, timeout=_STOP_TIMEOUT)
    if not pending.done():
        pending.cancel()
        await asyncio.wait({pending}, timeout=_STOP_TIMEOUT)
