"""The write queue is bounded: emit() and the awaited writes apply backpressure."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from event_log import EventLogError, EventLogger, LoggerClosedError
from event_log._errors import QueueFullError


async def test_emit_on_the_loop_raises_when_the_queue_is_full(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_queued=5) as log:
        for _ in range(5):
            log.emit("tool.called", "a")
        with pytest.raises(QueueFullError) as info:
            log.emit("tool.called", "a")
        assert isinstance(info.value, EventLogError)
        assert log.stats.queued == 5
        await log.flush()
        log.emit("tool.called", "a")  # room again
        await log.flush()
        assert await log.count_events() == 6
        assert log.stats.queued == 0


async def test_emit_from_threads_blocks_until_there_is_room(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_queued=10) as log:
        await log.flush()  # the logger knows its loop

        def flood() -> int:
            for _ in range(300):
                log.emit("tool.called", "thread")
            return 300

        counts = await asyncio.gather(*(asyncio.to_thread(flood) for _ in range(3)))
        await log.flush()
        assert await log.count_events() == sum(counts)


async def test_awaited_writes_wait_for_room(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_queued=3) as log:
        for _ in range(3):
            log.emit("tool.called", "a")
        event = await log.log_event("task.created", "c")  # waits, then goes through
        many = await log.log_events([{"event_type": "task.started", "source": "c"}] * 10)
        assert len(many) == 10  # larger than the bound: goes alone once the queue is empty
        assert await log.get_event(event.id) == event
        assert await log.count_events() == 14


@pytest.mark.sqlite
async def test_a_thread_waiting_for_room_gives_up_when_the_logger_closes(tmp_path: Path) -> None:
    path = tmp_path / "stalled.db"
    log = await EventLogger.open(f"sqlite+aiosqlite:///{path}", max_queued=2)
    await log.flush()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's batch will wait for this lock
    try:
        log.emit("tool.called", "a")
        log.emit("tool.called", "a")  # the queue is full now
        started = threading.Event()
        outcome: list[BaseException | None] = []

        def blocked_emit() -> None:
            started.set()
            try:
                log.emit("tool.called", "thread")
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        thread = threading.Thread(target=blocked_emit)
        thread.start()
        await asyncio.to_thread(started.wait)
        await asyncio.sleep(0.2)
        assert not outcome  # still blocked
        closing = asyncio.ensure_future(log.close())
        await asyncio.sleep(0.1)
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    await closing
    await asyncio.to_thread(thread.join, 5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], LoggerClosedError)
    assert log.stats.written == 2


async def test_non_blocking_emit_from_a_thread_raises_when_full(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_queued=1) as log:
        log.emit("tool.called", "a")  # full; the writer cannot run until we yield
        errors: list[BaseException] = []

        def try_once() -> None:
            try:
                log.emit("tool.called", "thread", block=False)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=try_once)
        thread.start()
        thread.join(5)  # deliberately blocking the loop: the queue cannot drain meanwhile
        assert len(errors) == 1
        assert isinstance(errors[0], QueueFullError)
        await log.flush()
        assert await log.count_events() == 1
