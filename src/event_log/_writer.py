"""The group-commit writer: one task that turns every queued write into few transactions.

Callers append to one queue (from the event loop, or from any thread through
``emit``). The writer task takes everything queued, up to ``max_batch_rows``
rows, and inserts it in one transaction; while that commits, new callers queue
up and form the next batch, so under load a batch grows to meet demand with no
timer. Each awaiting caller is resolved only after its transaction committed,
or failed with :class:`StorageError` if it did not. When a shared transaction
fails on its statement (a duplicate id, a value the database refuses), its
submissions are retried one transaction each, so one bad submission never
fails another caller's events. A batch whose connection was lost is tried
once more as a whole. When it fails for a reason no submission caused (the
connection lost again, a statement timeout, a lock not granted), every caller
of the batch is answered at once: retrying them one by one would make the
k-th wait out the same timeout k times.

Maintenance statements (a prune batch) run in the same queue, in their own
short transaction, so they never contend with this process's own writes for
a lock. Where the rows go is the backend sink's business (``backends``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.sql.dml import UpdateBase

from ._errors import (
    EventLogError,
    LoggerClosedError,
    QueueFullError,
    StorageError,
    as_storage_error,
    failure_kind,
    plain_reason,
    rolled_back,
    transient,
)
from ._models import Row
from .backends._sink import Sink

__all__ = ["DEFAULT_MAX_BATCH_ROWS", "DEFAULT_MAX_QUEUED", "Writer", "WriterStats"]

# Rows per transaction at most; large enough to amortise the commit, small
# enough that one transaction never holds SQLite's write lock for long.
DEFAULT_MAX_BATCH_ROWS = 2_000
# Events waiting to be written at most (about 0.5 kB each): the bound on the
# writer's memory. See Writer.emit for what happens when it is reached.
DEFAULT_MAX_QUEUED = 50_000

log = logging.getLogger("event_log")


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Event counts: committed, failed (never dropped silently) and still queued."""

    written: int
    failed: int
    queued: int


def _outcome(exc: BaseException, after_loss: bool = False) -> str:
    """What became of a write that failed with ``exc`` (``after_loss``: on a try after
    one whose connection was lost, which may have committed)."""
    if rolled_back(exc) and not after_loss:
        return "nothing of it was stored"
    return "it may or may not have been stored (never twice)"


def write_error(count: int, exc: BaseException, after_loss: bool = False) -> StorageError:
    """What a caller whose ``count`` events were not acknowledged is told: what happened,
    in words, and what became of them (the driver's exception is ``__cause__``)."""
    events = "1 event" if count == 1 else f"{count} events"
    return as_storage_error(f"writing {events}", exc, _outcome(exc, after_loss))


class _Write:
    __slots__ = ("future", "rows")

    def __init__(self, rows: Sequence[Row], future: asyncio.Future[None] | None):
        self.rows = rows
        self.future = future


class _Stream:
    """A write whose rows are made while the sink consumes them (see ``Writer.write_chunks``).

    It iterates the caller's chunks and keeps the exception they raised, so
    the caller gets that exception, not a storage error.
    """

    __slots__ = ("_chunks", "count", "error", "future")

    def __init__(
        self, count: int, chunks: Iterator[Sequence[Row]], future: asyncio.Future[None]
    ) -> None:
        self.count = count
        self._chunks = chunks
        self.future = future
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[Sequence[Row]]:
        return self

    def __next__(self) -> Sequence[Row]:
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except Exception as exc:
            self.error = exc
            raise


class _Job:
    __slots__ = ("future", "work")

    def __init__(self, work: Callable[[Sink], Awaitable[int]], future: asyncio.Future[int]):
        self.work = work
        self.future = future


class _Barrier:
    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]):
        self.future = future


class _Stop:
    __slots__ = ()


class Writer:
    """Owns the write queue and the task that drains it into transactions."""

    def __init__(
        self,
        sink: Sink,
        *,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self._sink = sink
        self._max_batch_rows = max_batch_rows
        self._max_queued = max_queued
        self._queue: deque[_Write | _Stream | _Job | _Barrier | _Stop] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # _submitted grows on any thread (emit), so under the lock; _written and
        # _failed change only on the loop, a batch at a time.
        self._lock = threading.Lock()
        self._submitted = 0
        self._written = 0
        self._failed = 0
        # Threads blocked in emit() wait here for room; the writer notifies.
        self._room = threading.Condition(self._lock)
        # Awaiting writers wait here for room (set after every batch).
        self._room_on_loop = asyncio.Event()
        # Followers' wake-up events, set after every commit and at close.
        self._listeners: set[asyncio.Event] = set()

    # -- binding to the loop ------------------------------------------------------

    def bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop on first use; refuse a second loop."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        elif self._loop is not loop:
            raise EventLogError("this logger belongs to another event loop")
        return loop

    def _start(self) -> None:
        if self._task is None:
            assert self._loop is not None
            self._task = self._loop.create_task(self._run(), name="event_log writer")

    def _on_loop_wake(self) -> None:
        self._wake_pending = False
        if not self._closed or self._task is not None:
            self._start()
        self._wake.set()

    # -- commit notifications ---------------------------------------------------------

    def add_listener(self, event: asyncio.Event) -> None:
        """Have ``event`` set after every commit of this writer, and when it closes."""
        self._listeners.add(event)

    def remove_listener(self, event: asyncio.Event) -> None:
        self._listeners.discard(event)

    def _notify_listeners(self) -> None:
        for event in self._listeners:
            event.set()

    # -- submitting -----------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        with self._lock:
            written, failed = self._written, self._failed
            return WriterStats(written, failed, self._submitted - written - failed)

    def _check_open(self) -> None:
        if self._closed:
            raise LoggerClosedError("the logger is closed")

    def _queued(self) -> int:
        return self._submitted - self._written - self._failed

    def submit(self, rows: Sequence[Row]) -> asyncio.Future[None]:
        """Queue rows as one all-or-nothing write (on the loop); the future resolves on commit."""
        self._check_open()
        loop = self.bind()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._submitted += len(rows)
        self._queue.append(_Write(rows, future))
        self._start()
        self._wake.set()
        return future

    async def write(self, rows: Sequence[Row]) -> None:
        """Queue rows as one all-or-nothing write and wait for its commit.

        Backpressure: while the queue is full, wait for room first (a write
        larger than the whole bound goes alone, once the queue is empty).
        """
        self._check_open()
        self.bind()
        if self._queued() + len(rows) > self._max_queued:
            await self._wait_for_room(len(rows))
        await self.submit(rows)

    async def _wait_for_room(self, count: int) -> None:
        while self._queued() > 0 and self._queued() + count > self._max_queued:
            self._room_on_loop.clear()
            await self._room_on_loop.wait()
            self._check_open()

    async def write_chunks(self, count: int, chunks: Iterator[Sequence[Row]]) -> None:
        """Write the ``count`` rows ``chunks`` makes as one all-or-nothing write.

        When the sink streams a write this large (PostgreSQL's COPY), the
        chunks are made inside its transaction, each while the server stores
        the one before, and an exception from ``chunks`` rolls it back and is
        raised here as it is. Otherwise every row is made first, right here,
        then written as by :meth:`write`.
        """
        if not self._sink.streams(count):
            await self.write([row for chunk in chunks for row in chunk])
            return
        self._check_open()
        loop = self.bind()
        await self._wait_for_room(count)
        self._check_open()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._submitted += count
        self._queue.append(_Stream(count, chunks, future))
        self._start()
        self._wake.set()
        await future

    def emit(self, row: Row, *, block: bool = True) -> None:
        """Queue one row without waiting for its commit, from the loop's thread or any other.

        Backpressure when ``max_queued`` events are already waiting: another
        thread blocks until the writer makes room (with ``block``); the event
        loop's own thread cannot wait (the writer needs the loop), so there,
        as without ``block``, emit raises :class:`QueueFullError` and nothing
        is queued.
        """
        self._check_open()
        loop = self._loop
        on_loop_thread = loop is None or threading.get_ident() == self._loop_thread
        if on_loop_thread:
            try:
                loop = self.bind()
            except RuntimeError:
                raise EventLogError(
                    "emit() from a thread with no running event loop needs a logger that "
                    "has already been used inside its loop (await something on it first)"
                ) from None
        assert loop is not None
        with self._lock:
            while self._queued() >= self._max_queued:
                if on_loop_thread or not block:
                    raise QueueFullError(
                        f"{self._max_queued} events are waiting to be written; await "
                        f"flush() (or use log_event, which waits for room) before emitting more"
                    )
                self._room.wait()
                if self._closed:
                    raise LoggerClosedError("the logger closed while emit() waited for room")
            self._submitted += 1
        self._queue.append(_Write((row,), None))
        if on_loop_thread:
            self._start()
            self._wake.set()
        elif not self._wake_pending:
            self._wake_pending = True
            try:
                loop.call_soon_threadsafe(self._on_loop_wake)
            except RuntimeError:  # the loop has closed
                self._wake_pending = False
                raise LoggerClosedError("the logger's event loop is closed") from None

    async def execute(self, statement: UpdateBase) -> int:
        """Run ``statement`` in its own transaction, in queue order with the writes."""
        return await self.run(lambda sink: sink.execute(statement))

    async def run(self, work: Callable[[Sink], Awaitable[int]]) -> int:
        """Run a maintenance step on the sink, in queue order with the writes."""
        self._check_open()
        loop = self.bind()
        future: asyncio.Future[int] = loop.create_future()
        self._queue.append(_Job(work, future))
        self._start()
        self._wake.set()
        return await future

    async def flush(self) -> None:
        """Wait until everything queued before this call is committed (or failed)."""
        loop = self.bind()
        if self._task is None and not self._queue:
            return
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(_Barrier(future))
        self._start()
        self._wake.set()
        await future

    async def close(self) -> None:
        """Refuse new writes, commit everything queued, stop the task."""
        if self._closed:
            if self._task is not None:
                await asyncio.shield(self._task)
            return
        self._closed = True
        try:
            if self._task is None and not self._queue:
                return
            self.bind()
            self._queue.append(_Stop())
            self._start()
            self._wake.set()
            assert self._task is not None
            await asyncio.shield(self._task)
        finally:
            await self._sink.close()

    # -- the writer task --------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        try:
            while True:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                head = queue[0]
                if isinstance(head, _Write):
                    batch: list[_Write] = []
                    rows = 0
                    while queue and isinstance(queue[0], _Write) and rows < self._max_batch_rows:
                        write = queue.popleft()
                        assert isinstance(write, _Write)
                        batch.append(write)
                        rows += len(write.rows)
                    await self._commit(batch)
                    continue
                queue.popleft()
                if isinstance(head, _Stream):
                    await self._commit_stream(head)
                elif isinstance(head, _Job):
                    await self._run_job(head)
                elif isinstance(head, _Barrier):
                    if not head.future.done():
                        head.future.set_result(None)
                else:
                    return
        finally:
            self._fail_leftovers()

    async def _commit(self, batch: list[_Write]) -> None:
        rows = batch[0].rows if len(batch) == 1 else [r for w in batch for r in w.rows]
        try:
            await self._sink.insert(rows)
        except Exception as exc:
            self._notify_listeners()  # a retry below may still commit part of it
            failure = exc
        else:
            self._committed(batch, len(rows))
            return
        after_loss = failure_kind(failure) == "lost"
        if after_loss:
            # Once more as a whole, on a new connection (a sink that does so itself
            # already did: then this costs one more connection, not a timeout).
            try:
                await self._sink.insert(rows)
            except Exception as exc:
                failure = exc
            else:
                self._committed(batch, len(rows))
                return
        if len(batch) == 1 or transient(failure):
            # Not one submission's fault: every caller hears it now.
            for write in batch:
                self._failed_write(write, failure, after_loss)
            return
        # Isolate the failure: retry each submission in its own transaction.
        for write in batch:
            try:
                await self._sink.insert(write.rows)
            except Exception as single_exc:
                self._failed_write(write, single_exc, after_loss)
            else:
                self._committed([write], len(write.rows))

    async def _commit_stream(self, stream: _Stream) -> None:
        try:
            await self._sink.insert_stream(stream.count, stream)
        except Exception as exc:
            if stream.error is None:
                self._fail_awaited(stream.future, stream.count, exc)
                return
            # The rows could not be made: nothing was accepted, nothing failed.
            with self._lock:
                self._submitted -= stream.count
                self._made_room()
            if not stream.future.done():
                stream.future.set_exception(stream.error)
            return
        with self._lock:
            self._written += stream.count
            self._made_room()
        self._notify_listeners()
        if not stream.future.done():
            stream.future.set_result(None)

    def _made_room(self) -> None:
        """Wake whoever waits for room (called with the lock held)."""
        self._room.notify_all()
        self._room_on_loop.set()

    def _committed(self, batch: list[_Write], rows: int) -> None:
        with self._lock:
            self._written += rows
            self._made_room()
        self._notify_listeners()
        for write in batch:
            future = write.future
            if future is not None and not future.done():
                future.set_result(None)

    def _failed_write(self, write: _Write, exc: BaseException, after_loss: bool = False) -> None:
        if write.future is not None:
            self._fail_awaited(write.future, len(write.rows), exc, after_loss)
            return
        with self._lock:
            self._failed += len(write.rows)
            self._made_room()
        ids = ", ".join(row[0] for row in write.rows)
        log.error(
            "event_log: emitted event(s) %s could not be written: %s; %s",
            ids,
            plain_reason(exc),
            _outcome(exc, after_loss),
        )

    def _fail_awaited(
        self,
        future: asyncio.Future[None],
        count: int,
        exc: BaseException,
        after_loss: bool = False,
    ) -> None:
        """``count`` events an awaiting caller submitted were not written: tell it why."""
        with self._lock:
            self._failed += count
            self._made_room()
        if not future.done():
            future.set_exception(write_error(count, exc, after_loss))

    async def _run_job(self, job: _Job) -> None:
        try:
            result = await job.work(self._sink)
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(as_storage_error("a maintenance job", exc))
        else:
            if not job.future.done():
                job.future.set_result(result)
            # A job may have written rows (an import): followers look at once.
            self._notify_listeners()

    def _fail_leftovers(self) -> None:
        """Anything still queued when the task ends is failed loudly, never lost quietly."""
        while self._queue:
            item = self._queue.popleft()
            closed = LoggerClosedError("the logger closed before this write")
            if isinstance(item, _Write):
                self._failed_write(item, closed)
            elif isinstance(item, _Stream):
                self._fail_awaited(item.future, item.count, closed)
            elif isinstance(item, _Job | _Barrier) and not item.future.done():
                item.future.set_exception(LoggerClosedError("the logger is closed"))
        with self._lock:
            self._made_room()  # threads waiting in emit() see the close and give up
        self._notify_listeners()
