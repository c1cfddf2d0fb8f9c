"""event_log.sync: SyncEventLogger, the blocking mirror of EventLogger, and the original
system's module functions bound to the default logger, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import subprocess
import sys
import textwrap
import threading
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import event_log
import event_log.sync._default as sync_default
from event_log import (
    Event,
    EventFilter,
    EventLogger,
    EventType,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    NewEvent,
    Page,
    RetentionPolicy,
    StorageError,
)
from event_log.sync import (
    SyncEventLogger,
    SyncFollower,
    close,
    configure,
    default_logger,
    get_agent_events,
    get_event,
    get_event_summary,
    get_recent_events,
    get_task_events,
    list_events,
    log_event,
    prune_events,
    shutdown,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Older than any retention below, whatever today's date.
LONG_AGO = datetime.now(UTC) - timedelta(days=500)
SQLITE_MEMORY = pytest.param("sqlite-memory", marks=pytest.mark.sqlite, id="sqlite-memory")
SQLITE_FILE = pytest.param("sqlite-file", marks=pytest.mark.sqlite, id="sqlite-file")
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")
# conftest's databases, on the backends chosen here (the default logger needs a database
# that outlives a logger: no in-memory one).
on_backends = pytest.mark.parametrize("migratable_url", [SQLITE_FILE, POSTGRES], indirect=True)


@pytest.fixture
def url(migratable_url: str) -> str:
    """An empty database that outlives a logger (the default logger reopens on it)."""
    return migratable_url


@pytest.fixture
def log(url: str) -> Iterator[SyncEventLogger]:
    with SyncEventLogger.open(url) as logger:
        yield logger


@pytest.fixture
def default_at(url: str) -> Iterator[str]:
    """The module functions' default logger on ``url``; afterwards it is closed and the
    settings it had before are back (another suite may share the default)."""
    previous_url, previous_options = sync_default._settings
    configure(url)
    yield url
    configure(previous_url, **previous_options)


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "event_log.sync"]


# -- the mirror -------------------------------------------------------------------------------


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_public_member_of_event_logger_is_mirrored() -> None:
    """A method or property added to EventLogger fails here until SyncEventLogger has it,
    with the same parameters (names, kinds, defaults, annotations) and return type."""
    assert public_names(SyncEventLogger) == public_names(EventLogger)
    for name in sorted(public_names(EventLogger)):
        original = inspect.getattr_static(EventLogger, name)
        mirror = inspect.getattr_static(SyncEventLogger, name)
        if isinstance(original, property):
            assert isinstance(mirror, property), name
            assert mirror.fset is None, name
            assert mirror.__doc__, name
            continue
        assert type(mirror) is type(original), name  # a classmethod stays one
        wanted = inspect.signature(getattr(EventLogger, name))
        got = inspect.signature(getattr(SyncEventLogger, name))
        assert list(got.parameters.values()) == list(wanted.parameters.values()), name
        assert not inspect.iscoroutinefunction(getattr(SyncEventLogger, name)), name
        assert getattr(SyncEventLogger, name).__doc__, name
        if name == "follow":
            assert got.return_annotation == "SyncFollower"
        elif name == "open":
            assert got.return_annotation == "Self"
        else:
            assert got.return_annotation == wanted.return_annotation, name
    # async with EventLogger... : with SyncEventLogger...
    assert hasattr(EventLogger, "__aenter__")
    assert hasattr(SyncEventLogger, "__enter__")
    assert hasattr(EventLogger, "__aexit__")
    assert hasattr(SyncEventLogger, "__exit__")


def test_every_contract_test_runs_on_the_sync_logger_or_is_left_out_with_a_reason() -> None:
    """A test added to test_contract fails this until test_sync_contract runs it or says
    why it does not apply."""
    import test_contract
    import test_sync_contract

    contract_tests = {name for name in dir(test_contract) if name.startswith("test_")}
    run = {name for name in dir(test_sync_contract) if name.startswith("test_")}
    left_out = test_sync_contract.LEFT_OUT.keys()
    assert not run & left_out
    assert contract_tests == run | left_out


def test_importing_creates_nothing_and_event_log_does_not_import_it(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import asyncio, gc, sys, threading
        import event_log
        assert "event_log.sync" not in sys.modules
        import event_log.sync
        from sqlalchemy.ext.asyncio import AsyncEngine
        assert threading.active_count() == 1, threading.enumerate()
        objects = gc.get_objects()
        assert not [o for o in objects if isinstance(o, AsyncEngine)]
        assert not [o for o in objects if isinstance(o, asyncio.AbstractEventLoop)]
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=60)
    assert list(tmp_path.iterdir()) == []


def test_names() -> None:
    assert event_log.sync.EventType is EventType
    assert len(event_log.sync.EventType) == 17
    assert event_log.sync.Event is Event
    assert event_log.sync.InvalidEventError is InvalidEventError
    assert shutdown is close
    assert sorted(event_log.sync.__all__) == event_log.sync.__all__
    for name in event_log.sync.__all__:
        assert getattr(event_log.sync, name) is not None


def test_module_functions_have_the_original_parameters_in_order() -> None:
    expected = {
        log_event: "(event_type, source, task_id=None, agent_id=None, data=None)",
        get_event: "(event_id)",
        list_events: (
            "(event_type=None, task_id=None, agent_id=None, source=None, limit=100, offset=0)"
        ),
        get_task_events: "(task_id)",
        get_agent_events: "(agent_id)",
        get_recent_events: "(minutes=60)",
        get_event_summary: "(minutes=60)",
        prune_events: "(older_than_days=30)",
    }
    for function, parameters in expected.items():
        signature = inspect.signature(function).replace(return_annotation=inspect.Parameter.empty)
        parameters_only = [
            p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()
        ]
        plain = signature.replace(parameters=parameters_only)
        assert str(plain) == parameters, function.__name__
        for parameter in signature.parameters.values():
            assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD


# -- SyncEventLogger, every method ------------------------------------------------------------


@pytest.mark.parametrize("backend_url", [SQLITE_MEMORY, SQLITE_FILE, POSTGRES], indirect=True)
def test_every_method(backend_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with SyncEventLogger.open(backend_url, prune_batch_size=7) as log:
        assert isinstance(log.engine, AsyncEngine)
        assert (log.read_only, log.max_data_bytes, log.retention_failures) == (False, 65_536, 0)

        first = log.log_event(
            EventType.TASK_CREATED, "coordinator", task_id="t1", agent_id="a1", data={"n": 1}
        )
        assert log.get_event(first.id) == first
        assert log.get_event("no such id") is None
        # A generator is read in the caller's thread, then committed in one transaction.
        made = log.log_events(
            NewEvent(event_type="tool.called", source="a1", task_id="t1", agent_id="a1")
            for _ in range(3)
        )
        assert [e.event_type for e in made] == ["tool.called"] * 3
        emitted = [log.emit("system.info", "thread", data={"i": i}) for i in range(20)]
        log.flush()
        assert log.get_event(emitted[-1].id) == emitted[-1]
        assert (log.stats.written, log.stats.failed, log.stats.queued) == (24, 0, 0)
        old = {
            "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
            "event_type": "task.failed",
            "source": "old",
            "task_id": "t1",
            "timestamp": LONG_AGO,
        }
        result = log.import_events(iter([old, old]))
        assert (result.imported, result.already_present) == (1, 1)

        assert log.count_events() == 25
        assert log.count_events(filter=EventFilter(task_id="t1")) == 5
        seen: list[Event] = []
        cursor = None
        while True:
            page = log.list_events(limit=6, cursor=cursor, newest_first=False)
            assert isinstance(page, Page)
            seen.extend(page.events)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len({e.id for e in seen}) == 25
        assert [e.event_type for e in log.get_task_events("t1")] == [
            "task.failed",
            "task.created",
            "tool.called",
            "tool.called",
            "tool.called",
        ]
        assert len(log.get_agent_events("a1", limit=2)) == 2
        assert len(log.get_recent_events(5, limit=1000)) == 24
        assert log.get_event_summary(5) == {"system.info": 20, "tool.called": 3, "task.created": 1}
        buckets = log.get_event_histogram(
            since=LONG_AGO - timedelta(minutes=10),
            until=LONG_AGO + timedelta(minutes=50),
            every=timedelta(minutes=30),
            by="event_type",
        )
        assert [b.counts for b in buckets if b.total] == [{"task.failed": 1}]

        following = log.follow(cursor=first.id, event_type="tool.*")
        assert isinstance(following, SyncFollower)
        assert [next(following).id for _ in range(3)] == [e.id for e in made]
        following.close()
        assert next(following, None) is None

        assert log.ensure_partitions() == []
        preview = log.preview_prune(365, overrides={"task.*": 100})
        assert [(p.label, p.count) for p in preview] == [("task.*", 1), ("default", 0)]
        assert log.prune_as_previewed(preview) == 1
        log.log_events([{"event_type": "tool.called", "source": "s", "timestamp": LONG_AGO}] * 30)
        # Progress reports at every turn of the loop, so that each prune below has some.
        monkeypatch.setattr("event_log._pruning.PROGRESS_POLL_SECONDS", 0.0)
        calls: list[tuple[int, bool, int]] = []

        def on_progress(deleted: int) -> None:
            # In the caller's thread, so it may call the logger itself.
            on_caller = threading.current_thread() is threading.main_thread()
            calls.append((deleted, on_caller, log.count_events()))

        assert log.prune_as_previewed(log.preview_prune(365), on_progress=on_progress) == 30
        assert calls
        assert all(on_caller for _, on_caller, _ in calls)
        assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
        log.log_events([{"event_type": "tool.called", "source": "s", "timestamp": LONG_AGO}] * 20)

        def stop(deleted: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            log.prune_as_previewed(log.preview_prune(365), on_progress=stop)
        # Stopped: once the batch it had queued is through, what is left stays left.
        log.flush()
        left = log.count_events(until=LONG_AGO + timedelta(seconds=1))
        assert 0 <= left <= 20
        assert log.apply_retention(RetentionPolicy(365)) == left
        log.log_event("task.created", "c", timestamp=LONG_AGO)
        assert log.prune_events(365, overrides={"tool.*": 1}) == 1
        assert log.prune_events() == 0
        assert log.reclaim_space() >= 0
        assert log.count_events() == 24
    assert not log._runner._thread.is_alive()


@on_backends
def test_a_read_only_logger(url: str) -> None:
    with SyncEventLogger.open(url) as writer:
        writer.log_event("task.created", "c")
    with SyncEventLogger.open(url, read_only=True) as reader:
        assert reader.read_only
        assert reader.count_events() == 1
        with pytest.raises(StorageError):
            reader.log_event("task.created", "c")


@on_backends
def test_open_and_close(url: str, tmp_path: Path) -> None:
    before = len(sync_threads())
    log = SyncEventLogger.open(url)
    assert len(sync_threads()) == before + 1
    log.emit("task.created", "c")
    log.close()
    log.close()  # idempotent
    assert len(sync_threads()) == before
    for call in (
        lambda: log.log_event("task.created", "c"),
        lambda: log.emit("task.created", "c"),
        lambda: log.list_events(),
        lambda: log.follow(),
        lambda: log.flush(),
        lambda: log.prune_events(),
    ):
        with pytest.raises(LoggerClosedError):
            call()
    with SyncEventLogger.open(url) as again:
        assert again.count_events() == 1  # close() flushed the emitted event
    # A database that cannot be opened fails in open(), with no thread left behind.
    with pytest.raises(StorageError):
        SyncEventLogger.open(f"sqlite+aiosqlite:///{tmp_path / 'missing.db'}", read_only=True)
    with pytest.raises(TypeError):
        SyncEventLogger.open(url, no_such_option=1)
    with pytest.raises(ValueError, match="poll_interval"):
        SyncEventLogger.open(url, poll_interval=0)
    assert len(sync_threads()) == before


@on_backends
def test_errors_are_the_async_apis_classes(log: SyncEventLogger) -> None:
    with pytest.raises(InvalidEventError) as info:
        log.log_event("Not A Type", "c")
    assert type(info.value) is InvalidEventError
    with pytest.raises(InvalidEventError):
        log.emit("task.created", "")
    with pytest.raises(InvalidEventError):
        log.log_events([{"event_type": "task.created", "source": "c"}, {"event_type": "x"}])
    with pytest.raises(InvalidEventError):
        log.log_events("task.created")  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError):
        log.import_events([{"event_type": "task.created"}])
    assert log.count_events() == 0
    log.log_events([{"event_type": "task.created", "source": "c"}] * 3)
    cursor = log.list_events(limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursorError) as cursor_info:
        log.list_events(limit=1, cursor="not a cursor")
    assert type(cursor_info.value) is InvalidCursorError
    with pytest.raises(InvalidCursorError, match="newest_first"):
        log.list_events(limit=1, cursor=cursor, newest_first=False)
    with pytest.raises(InvalidCursorError):
        log.follow(cursor=cursor)  # a newest-first cursor cannot follow forwards
    with pytest.raises(ValueError, match="limit"):
        log.list_events(limit=0)
    with pytest.raises(ValueError, match="minutes"):
        log.get_event_summary(-1)
    with pytest.raises(ValueError, match="older_than_days"):
        log.prune_events(-1)
    with pytest.raises(ValueError, match="since is required"):
        log.get_event_histogram(every=timedelta(minutes=1))
    with pytest.raises(ValueError, match="mapping"):
        log.follow(data_contains=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        log.list_events(colour="red")  # type: ignore[call-arg]


# -- threads, loops, the logger's own thread ------------------------------------------------------


@on_backends
def test_eight_threads_logging_at_once_lose_nothing(default_at: str) -> None:
    start = threading.Barrier(8)

    def work(n: int) -> list[str]:
        start.wait()
        return [
            log_event("tool.called", f"thread-{n}", None, f"a{n}", {"i": i}).id for i in range(200)
        ]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        batches = list(pool.map(work, range(8)))
    ids = [event_id for batch in batches for event_id in batch]
    assert len(set(ids)) == 1600
    stored = {e.id for e in list_events("tool.called", limit=2000)}
    assert stored == set(ids)
    for n, batch in enumerate(batches):
        assert [e.id for e in list_events(agent_id=f"a{n}", limit=300)] == batch[::-1]


@on_backends
def test_threads_racing_to_open_the_default_open_one(default_at: str) -> None:
    before = len(sync_threads())
    start = threading.Barrier(8)

    def first_use() -> SyncEventLogger:
        start.wait()
        return default_logger()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        loggers = list(pool.map(lambda _: first_use(), range(8)))
    assert len({id(logger) for logger in loggers}) == 1
    assert len(sync_threads()) == before + 1


@on_backends
def test_calls_from_inside_a_running_event_loop(default_at: str) -> None:
    with SyncEventLogger.open(default_at) as log:

        async def coordinator() -> tuple[Event, Event, int, list[Event]]:
            # Blocking calls from a coroutine block this loop, but never deadlock it.
            mine = log.log_event("task.created", "coordinator", task_id="t-9")
            theirs = log_event("task.assigned", "coordinator", "t-9", "a-1")
            await asyncio.sleep(0)
            return mine, theirs, log.count_events(task_id="t-9"), get_task_events("t-9")

        mine, theirs, count, timeline = asyncio.run(coordinator())
    assert count == 2
    assert [e.id for e in timeline] == [mine.id, theirs.id]


@on_backends
def test_a_call_on_the_loggers_own_thread_raises_instead_of_waiting(log: SyncEventLogger) -> None:
    outcome: concurrent.futures.Future[list[object]] = concurrent.futures.Future()

    def on_the_loop() -> None:
        results: list[object] = []
        for call in (lambda: log.get_event("x"), log.close, lambda: next(log.follow(), None)):
            try:
                results.append(call())
            except Exception as exc:
                results.append(exc)
        results.append(log.emit("system.info", "on the loop"))  # emit works anywhere
        outcome.set_result(results)

    log._runner.loop.call_soon_threadsafe(on_the_loop)
    *errors, emitted = outcome.result(timeout=30)
    for error in errors:
        assert isinstance(error, RuntimeError)
        assert "own event-loop thread" in str(error)
    log.flush()
    assert isinstance(emitted, Event)
    assert log.get_event(emitted.id) == emitted


# -- follow -------------------------------------------------------------------------------------


@on_backends
def test_follow_from_another_thread_ends_after_close(url: str) -> None:
    log = SyncEventLogger.open(url)
    seed = log.log_event("task.created", "c")
    following = log.follow(cursor=seed.id, event_type="tool.*")
    received: list[str] = []
    first = threading.Event()

    def consume() -> None:
        for event in following:
            received.append(event.id)
            first.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    expected = [log.log_event("tool.called", "a").id]
    assert first.wait(30)
    log.log_event("task.started", "c")  # filtered out
    batch = log.log_events([{"event_type": "tool.completed", "source": "a"}] * 5)
    expected += [e.id for e in batch]
    expected.append(log.emit("tool.failed", "a").id)
    log.close()  # the follower yields what was committed before this returned, then stops
    consumer.join(30)
    assert not consumer.is_alive()
    assert received == expected


@on_backends
def test_breaking_out_or_closing_stops_the_async_follower(log: SyncEventLogger) -> None:
    seed = log.log_event("task.created", "c")
    log.log_events([{"event_type": "tool.called", "source": "a"}] * 3)
    following = log.follow(cursor=seed.id)
    inner = following._follower
    for event in following:
        assert event.event_type == "tool.called"
        break
    del following  # what leaving the loop does to an iterator nobody holds
    log.count_events()  # a call queued behind the stop
    assert inner._finished  # type: ignore[attr-defined]

    with log.follow(cursor=seed.id) as following:
        inner = following._follower
        assert next(following).event_type == "tool.called"
    assert inner._finished  # type: ignore[attr-defined]
    assert next(following, None) is None


# -- the module functions -----------------------------------------------------------------------


@on_backends
def test_module_functions(default_at: str) -> None:
    created = log_event(EventType.TASK_CREATED, "coordinator", "t-1", None, {"title": "x"})
    assert isinstance(created, Event)
    assert isinstance(created.data, dict)
    assert created.timestamp.tzinfo is not None
    assigned = log_event(
        event_type=EventType.TASK_ASSIGNED,
        source="coordinator",
        task_id="t-1",
        agent_id="a-1",
        data={"bid_sats": 420},
    )
    bid = log_event("bid.submitted", "a-1", "t-1", "a-1")
    custom = log_event("payment.settled", "bank", data={"sats": 420})  # a custom dotted type
    assert get_event(assigned.id) == assigned
    assert get_event(custom.id) == custom
    assert get_event("nope") is None
    assert get_task_events("t-1") == [created, assigned, bid]
    assert get_agent_events("a-1") == [bid, assigned]
    assert list_events() == [custom, bid, assigned, created]
    assert [e.id for e in list_events(event_type="task.assigned")] == [assigned.id]
    assert [e.id for e in list_events(event_type="task.*", source="coordinator")] == [
        assigned.id,
        created.id,
    ]
    assert list_events(source="bank") == [custom]
    assert [e.event_type for e in get_recent_events(1)] == [
        "payment.settled",
        "bid.submitted",
        "task.assigned",
        "task.created",
    ]
    assert get_event_summary(1) == {
        "task.created": 1,
        "task.assigned": 1,
        "bid.submitted": 1,
        "payment.settled": 1,
    }
    default_logger().log_event("task.failed", "c", timestamp=datetime.now(UTC) - timedelta(days=40))
    assert get_recent_events() == get_recent_events(60)
    assert len(get_recent_events(60 * 24 * 41)) == 5
    assert prune_events() == 1
    assert prune_events(older_than_days=30) == 0
    assert len(list_events(limit=10)) == 4
    with pytest.raises(InvalidEventError):
        log_event("Task Created", "coordinator")
    with pytest.raises(InvalidEventError):
        log_event("task.created", "c", data={"x": float("nan")})
    with pytest.raises(ValueError, match="older_than_days"):
        prune_events(-1)
    assert len(list_events(limit=10)) == 4


@on_backends
def test_positional_calls_in_the_original_order(default_at: str) -> None:
    event = log_event("task.created", "coord", "t-1", "a-1", {"k": 1})
    assert (event.task_id, event.agent_id, event.data) == ("t-1", "a-1", {"k": 1})
    log_event("task.created", "other", "t-2", "a-2", None)
    assert list_events("task.created", "t-1", None, None, 10, 0) == [event]
    assert list_events("task.created", None, "a-1", "coord", 10, 0) == [event]
    assert list_events("task.created", None, None, None, 1, 1) == [event]
    assert list_events(None, None, None, None, 10, 2) == []
    assert get_event(event.id) == event
    assert get_task_events("t-1") == [event]
    assert get_agent_events("a-1") == [event]
    assert get_recent_events(5) == list_events()
    assert get_event_summary(5) == {"task.created": 2}
    assert prune_events(0) == 2  # everything logged before now


@on_backends
def test_list_events_offset_reads_on_through_pages(default_at: str) -> None:
    log = default_logger()
    log.log_events(
        [{"event_type": "tool.called", "source": "a", "timestamp": T0}] * 1500
        + [{"event_type": "tool.called", "source": "b", "timestamp": T0}] * 1000
    )
    everything: list[Event] = []
    cursor = None
    while True:
        page = log.list_events(limit=1000, cursor=cursor)
        everything.extend(page.events)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(everything) == 2500
    assert list_events(limit=1200, offset=1100) == everything[1100:2300]
    assert list_events(limit=5000) == everything
    assert list_events(limit=10, offset=2495) == everything[2495:]
    assert list_events(limit=10, offset=2500) == []
    assert (
        list_events(source="a", limit=3, offset=1499)
        == [e for e in everything if e.source == "a"][1499:]
    )
    assert list_events(limit=0) == []
    for bad in ({"limit": -1}, {"offset": -1}, {"limit": True}, {"offset": 1.5}):
        with pytest.raises(ValueError, match="must be an int >= 0"):
            list_events(**bad)  # type: ignore[arg-type]


def test_configure_close_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous_url, previous_options = sync_default._settings
    first, second, from_env = (
        f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("first", "second", "env")
    )
    try:
        configure(first)
        log_event("task.created", "c")
        opened = default_logger()
        configure(second, max_data_bytes=100)  # closes the open default
        assert opened._closed
        with pytest.raises(LoggerClosedError):
            opened.log_event("task.created", "c")
        log_event("task.created", "c")
        with pytest.raises(InvalidEventError, match="at most 100"):
            log_event("task.created", "c", data={"x": "y" * 200})
        assert default_logger() is not opened
        close()
        shutdown()  # nothing open: nothing to do
        log_event("task.created", "c")  # opens it again
        monkeypatch.setenv("EVENT_LOG_URL", from_env)
        configure()
        log_event("task.created", "c")
        close()
    finally:
        configure(previous_url, **previous_options)
    for database, count in ((first, 1), (second, 2), (from_env, 1)):
        with SyncEventLogger.open(database) as log:
            assert log.count_events() == count, database


# -- exit and fork ------------------------------------------------------------------------------


EXIT_SCRIPT = """
import sys
from event_log.sync import SyncEventLogger, configure, default_logger, log_event

url = sys.argv[1]
configure(url)
log = default_logger()
for i in range(2500):
    log.emit("tool.called", "default", data={"i": i})
log_event("task.created", "default")
other = SyncEventLogger.open(url)
for i in range(2500):
    other.emit("tool.called", "other", data={"i": i})
del other  # nobody closes it, or the default
"""


@on_backends
def test_a_normal_exit_flushes_and_closes_every_logger(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, url], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    with SyncEventLogger.open(url) as log:
        assert log.count_events(source="default") == 2501
        assert log.count_events(source="other") == 2500


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
@on_backends
def test_a_forked_child_opens_its_own_default(default_at: str) -> None:
    parent_event = log_event("task.created", "parent", "forked")
    own = SyncEventLogger.open(default_at)
    own.emit("task.started", "parent", task_id="forked")
    # Quiet before the fork: a child inherits the locks other threads hold at that moment
    # (SQLite's own among them) and would wait for them forever.
    own.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        status = 1
        try:
            os.close(read)
            try:
                own.log_event("task.failed", "child")
            except LoggerClosedError:
                pass
            else:
                raise AssertionError("the parent's logger worked in the child")
            own.close()  # only marks it: the parent's thread is not the child's
            ids = [log_event("tool.called", "child", "forked", "c-1").id for _ in range(3)]
            assert get_event(parent_event.id) == parent_event
            close()
            os.write(write, " ".join(ids).encode())
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_ids = pipe.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child_ids) == 3
    own.flush()
    timeline = get_task_events("forked")
    assert [e.source for e in timeline] == ["parent", "parent", "child", "child", "child"]
    assert [e.id for e in timeline[2:]] == child_ids
    after = log_event("task.completed", "parent", "forked")
    assert own.get_event(after.id) == after
    own.close()
