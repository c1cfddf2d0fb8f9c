"""EventLogHandler: levels to event types, tracebacks, no recursion, no silent drops."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from event_log import EventLogger, LoggerClosedError
from event_log.logging import EventLogHandler


@contextmanager
def attached(handler: logging.Handler, name: str | None = None) -> Iterator[logging.Logger]:
    """A private logger (DEBUG, not propagating) with ``handler``, removed afterwards."""
    logger = logging.getLogger(name or f"tests.handler.{uuid.uuid4().hex[:8]}")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        logger.setLevel(level)


async def all_events(log: EventLogger, **filters):
    events, cursor = [], None
    while True:
        page = await log.list_events(limit=1000, cursor=cursor, newest_first=False, **filters)
        events += page.events
        if page.next_cursor is None:
            return events
        cursor = page.next_cursor


async def test_levels_map_to_event_types(log: EventLogger) -> None:
    handler = EventLogHandler(log)
    with attached(handler) as logger:
        logger.debug("not recorded")
        logger.info("not recorded either")
        logger.warning("disk at %d%%", 91)
        logger.error("an error")
        logger.critical("a critical error")
    await log.flush()

    events = await all_events(log)
    assert [(e.event_type, e.data["message"]) for e in events] == [
        ("system.warning", "disk at 91%"),
        ("system.error", "an error"),
        ("system.error", "a critical error"),
    ]
    warning = events[0]
    assert warning.source == logger.name
    assert warning.data["logger"] == logger.name
    assert warning.data["level"] == "WARNING"
    assert warning.data["module"] == "test_logging_handler"
    assert warning.data["function"] == "test_levels_map_to_event_types"
    assert isinstance(warning.data["line"], int)
    assert "traceback" not in warning.data
    assert [e.data["level"] for e in events[1:]] == ["ERROR", "CRITICAL"]
    assert handler.dropped == 0


async def test_exception_records_carry_type_message_and_traceback(log: EventLogger) -> None:
    handler = EventLogHandler(log)

    def fail_deep() -> None:
        raise KeyError("missing-invoice")

    with attached(handler) as logger:
        try:
            fail_deep()
        except KeyError:
            logger.exception("could not settle %s", "inv-7")
    await log.flush()

    (event,) = await all_events(log)
    assert event.event_type == "system.error"
    assert event.data["message"] == "could not settle inv-7"
    assert event.data["exc_type"] == "KeyError"
    assert event.data["exc_message"] == "'missing-invoice'"
    tb = event.data["traceback"]
    assert tb.startswith("Traceback (most recent call last):")
    assert "in fail_deep" in tb
    assert 'raise KeyError("missing-invoice")' in tb
    assert tb.rstrip().endswith("KeyError: 'missing-invoice'")


async def test_minimum_level_is_configurable(log: EventLogger) -> None:
    errors_only = EventLogHandler(log, logging.ERROR)
    with attached(errors_only) as logger:
        logger.warning("ignored below ERROR")
        logger.error("kept")
    verbose = EventLogHandler(log, "INFO")
    with attached(verbose) as logger:
        logger.debug("ignored below INFO")
        logger.info("kept as info")
    await log.flush()

    events = await all_events(log)
    assert [(e.event_type, e.data["message"]) for e in events] == [
        ("system.error", "kept"),
        ("system.info", "kept as info"),
    ]


async def test_source_task_and_agent(log: EventLogger) -> None:
    long_name = "tests.handler." + "x" * 300
    with attached(EventLogHandler(log), long_name) as logger:
        logger.warning("long name")
        logger.error("in a task", extra={"task_id": "t-1", "agent_id": "a-1"})
    with attached(EventLogHandler(log, source="billing")) as logger:
        logger.warning("explicit source")
    await log.flush()

    by_message = {e.data["message"]: e for e in await all_events(log)}
    assert by_message["long name"].source == long_name[:255]
    assert by_message["in a task"].task_id == "t-1"
    assert by_message["in a task"].agent_id == "a-1"
    assert [e.data["message"] for e in await log.get_task_events("t-1")] == ["in a task"]
    assert by_message["explicit source"].source == "billing"
    with pytest.raises(ValueError, match="source"):
        EventLogHandler(log, source="")


async def test_oversize_and_unstorable_records_are_cut_and_retried(log: EventLogger) -> None:
    handler = EventLogHandler(log)
    huge = "m" * 200_000
    with attached(handler) as logger:
        try:
            raise RuntimeError("e" * 100_000)
        except RuntimeError:
            logger.exception(huge)
        logger.warning("nul \x00 and lone surrogate \udc80")
    await log.flush()

    big, odd = await all_events(log)
    assert handler.dropped == 0
    assert big.data["truncated"] is True
    assert big.data["message"].startswith("mmmm")
    assert big.data["message"].endswith("characters cut ...]")
    # The traceback keeps its tail: the exception line.
    assert big.data["traceback"].startswith("[... ")
    assert big.data["traceback"].endswith("e" * 100 + "\n")
    assert big.data["exc_type"] == "RuntimeError"
    size = len(json.dumps(big.data, ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= 65_536
    assert odd.data["message"] == "nul \\x00 and lone surrogate \\udc80"
    assert odd.data["truncated"] is True


async def test_a_smaller_logger_limit_is_honoured_when_told(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_data_bytes=2_000) as small:
        handler = EventLogHandler(small)  # sized from the logger
        with attached(handler) as logger:
            logger.error("x" * 10_000)
        await small.flush()
        (event,) = await all_events(small)
        assert handler.dropped == 0
        assert event.data["message"].startswith("xxx")
        assert len(event.data["message"]) < 2_000


async def test_library_records_are_never_relogged(log: EventLogger) -> None:
    """The handler on the library's own logger, and a write that fails: no loop."""
    reported: list[logging.LogRecord] = []
    recorder = logging.Handler()
    recorder.emit = reported.append  # type: ignore[method-assign]
    handler = EventLogHandler(log)
    with attached(recorder, "event_log"), attached(handler, "event_log"):
        logging.getLogger("event_log").error("the library's own report")
        logging.getLogger("event_log.writer").warning("a child of it")
        await log.flush()
        assert await log.count_events() == 0

        # Make every background write fail: the library reports each failure on
        # the ``event_log`` logger. Were that record re-logged, the new event would
        # fail the same way and be reported again, forever.
        async with log.engine.begin() as conn:
            await conn.execute(text("DROP TABLE event_log"))
        log.emit("system.info", "tests")
        await log.flush()
        await log.flush()
    assert log.stats.failed == 1
    assert handler.dropped == 0
    assert [r.name for r in reported] == ["event_log", "event_log.writer", "event_log"]
    assert "could not be written" in reported[-1].getMessage()


async def test_records_raised_while_emitting_are_not_reentered(log: EventLogger) -> None:
    handler = EventLogHandler(log)
    calls = []

    class Noisy:
        """An EventLogger whose emit() itself logs on the handler's logger."""

        def emit(self, *args, **kwargs):
            calls.append(args[0])
            logger.warning("logged from inside emit()")
            return log.emit(*args, **kwargs)

    handler.log = Noisy()  # type: ignore[assignment]
    with attached(handler) as logger:
        logger.error("the outer record")
    await log.flush()

    assert calls == ["system.error"]
    events = await all_events(log)
    assert [e.data["message"] for e in events] == ["the outer record"]
    # The thread-local flag is reset: the next record is recorded again.
    handler.log = log
    with attached(handler, logger.name):
        logger.warning("after")
    await log.flush()
    assert await log.count_events() == 2


async def test_closed_logger_goes_to_handle_error_and_is_counted(
    log: EventLogger, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = EventLogHandler(log)
    failed: list[logging.LogRecord] = []
    original = handler.handleError

    def handle_error(record: logging.LogRecord) -> None:
        failed.append(record)
        original(record)

    handler.handleError = handle_error  # type: ignore[method-assign]
    await log.close()
    with attached(handler) as logger:
        logger.error("nowhere to go")
        logger.warning("nor this")
    assert handler.dropped == 2
    assert [r.getMessage() for r in failed] == ["nowhere to go", "nor this"]
    # Not silent: logging prints the failure (raiseExceptions is on by default).
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert LoggerClosedError.__name__ in err


async def test_emitting_does_not_wait_for_the_handler_lock(log: EventLogger) -> None:
    """A thread stuck inside the handler must not stop others (the loop's thread) logging."""
    handler = EventLogHandler(log)
    await log.flush()
    held, release = threading.Event(), threading.Event()
    # Whether the holder was released by us (True) or gave up waiting (False): an emit
    # that waited for the lock could only return after the holder gave up.
    released_by_us: list[bool] = []

    def hold_the_lock() -> None:
        with handler.lock:  # type: ignore[union-attr]
            held.set()
            released_by_us.append(release.wait(30))

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert held.wait(30)
        with attached(handler) as logger:
            logger.warning("while the handler lock is held")  # on the loop's thread
            release.set()  # reached only once the emit has returned
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    assert released_by_us == [True], "the emit waited until the holder gave the lock up"
    await log.flush()
    assert await log.count_events(event_type="system.warning") == 1


async def test_ten_thousand_records_from_eight_threads_lose_none(log: EventLogger) -> None:
    threads_n, per_thread = 8, 1_250
    handler = EventLogHandler(log)
    await log.flush()  # binds the logger to this loop, so other threads may emit()
    start = threading.Barrier(threads_n)

    def work(n: int, logger: logging.Logger) -> None:
        start.wait()
        for i in range(per_thread):
            level = logging.WARNING if i % 2 else logging.ERROR
            logger.log(level, "thread %d record %d", n, i)

    with attached(handler) as logger:
        threads = [
            threading.Thread(target=work, args=(n, logger), name=f"worker-{n}")
            for n in range(threads_n)
        ]
        for thread in threads:
            thread.start()
        # Join off the loop: the writer keeps draining while the threads log.
        for thread in threads:
            await asyncio.to_thread(thread.join)
    await log.flush()

    total = threads_n * per_thread
    assert handler.dropped == 0
    assert log.stats.failed == 0
    assert await log.count_events(event_type="system.warning") == total // 2
    assert await log.count_events(event_type="system.error") == total // 2
    messages = {e.data["message"] for e in await all_events(log)}
    assert messages == {
        f"thread {n} record {i}" for n in range(threads_n) for i in range(per_thread)
    }


async def test_a_full_queue_drops_the_record_loudly_instead_of_blocking(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with EventLogger.open(backend_url, max_queued=1) as small:
        handler = EventLogHandler(small)
        failures: list[logging.LogRecord] = []
        monkeypatch.setattr(handler, "handleError", failures.append)
        logger = logging.getLogger("test.full_queue")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            small.emit("tool.called", "a")  # full; the writer cannot run until we yield
            thread = threading.Thread(target=logger.error, args=("no room",))
            thread.start()
            thread.join(5)  # the loop is blocked on purpose: nothing drains meanwhile
            assert not thread.is_alive()  # the handler did not wait for room
            assert handler.dropped == 1
            assert [r.getMessage() for r in failures] == ["no room"]
        finally:
            logger.removeHandler(handler)
            logger.propagate = True
