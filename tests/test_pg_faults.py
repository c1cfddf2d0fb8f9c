"""PostgreSQL connection faults cost no write and no wake-up, and are told in plain words.

Each test provokes the fault for real on the logger's own server processes
(``pg_terminate_backend`` of the logger's backends only, found by their pid,
their ``application_name`` or their LISTEN; a table lock held by another
session; ``statement_timeout`` on the logger's connections), through each
driver. Run alone with ``pytest -m fault tests/test_pg_faults.py -s`` to see
the figures each one prints.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy.engine import make_url

import event_log._follow as follow_module
from event_log import Event, EventLogger, StorageError, upgrade
from event_log._engine import create_engine
from event_log._errors import as_storage_error, failure_kind, translate_storage_errors
from event_log.backends.postgresql._listen import ReopeningListener
from follow_helpers import started
from pg_helpers import pg_sink, server_pid

pytestmark = [pytest.mark.fault, pytest.mark.postgres]


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def _admin(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own (not the logger's), to kill and lock with."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def _logger(url: str, settings: dict[str, str], **options: Any) -> AsyncIterator[EventLogger]:
    """A logger whose connections all carry these server ``settings`` (an
    ``application_name``, a ``statement_timeout``), through the URL's driver."""
    if make_url(url).get_driver_name() == "psycopg":
        connect_args: dict[str, Any] = {
            "options": " ".join(f"-c {name}={value}" for name, value in settings.items())
        }
    else:
        connect_args = {"server_settings": settings}
    await upgrade(url)
    engine = create_engine(make_url(url), connect_args=connect_args)
    try:
        async with EventLogger(engine, **options) as log:
            yield log
    finally:
        await engine.dispose()


async def _until(condition: Callable[[], Awaitable[bool]], what: str, seconds: float = 10) -> None:
    """Wait for ``condition()`` (a guard against hanging, not a measured time)."""
    deadline = time.monotonic() + seconds
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        await asyncio.sleep(0.002)


# -- the writer's connection -----------------------------------------------------------------


async def test_a_connection_killed_between_two_writes_costs_no_write(
    postgres_driver_url: str,
) -> None:
    """Killed while idle, asyncpg's connection fails its next call on the protocol's
    state ("cannot switch to state 12") rather than as a lost connection; either
    way the write goes again on a new connection, and no caller hears of it."""
    rng = random.Random(2027)
    started_at = time.perf_counter()
    async with EventLogger.open(postgres_driver_url) as log, _admin(postgres_driver_url) as admin:
        sink = pg_sink(log)
        written: list[Event] = []
        for _ in range(100):
            written.append(await log.log_event("tool.called", "first"))
            pid = server_pid(sink)
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            # At once, or once the server's goodbye has (or has not yet) reached the client.
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.003, 0.01]))
            written.append(await log.log_event("tool.called", "second"))
            assert server_pid(sink) != pid  # the kill really cost the connection
        assert log.stats.failed == 0
        stored = await admin.fetch("SELECT id FROM event_log ORDER BY seq")
    assert [r["id"] for r in stored] == [e.id for e in written]  # each once, in order
    took = time.perf_counter() - started_at
    print(f"\n100 kills between two writes: 200 of 200 written in {took:.1f} s")


@pytest.mark.parametrize("size", [1, 300], ids=["statement", "copy"])
async def test_a_write_whose_answer_was_lost_after_it_committed_counts_as_written(
    postgres_driver_url: str, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The connection goes just after the commit: the retry fails on the ids, finds
    every row stored, and the caller is told it was written, stored once."""
    async with EventLogger.open(postgres_driver_url) as log, _admin(postgres_driver_url) as admin:
        await log.log_event("task.created", "c")
        sink = pg_sink(log)
        lost: list[int] = []

        def cut_after(original: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def committed_then_lost(driver: Any, *args: Any) -> Any:
                result = await original(driver, *args)
                if not lost and (size == 1 or args == ("COMMIT",)):
                    lost.append(server_pid(sink))
                    sink._terminate(driver)
                    raise ConnectionResetError(104, "Connection reset by peer")
                return result

            return committed_then_lost

        name = "_statement" if size == 1 else "_command"
        monkeypatch.setattr(sink, name, cut_after(getattr(sink, name)))
        written = await log.log_events([{"event_type": "tool.called", "source": "s"}] * size)
        assert lost  # the fault happened
        assert log.stats.failed == 0
        ids = [r["id"] for r in await admin.fetch("SELECT id FROM event_log ORDER BY seq")]
    assert ids[1:] == [e.id for e in written]  # each once


# -- the LISTEN connection -------------------------------------------------------------------


async def _listen_pids(admin: asyncpg.Connection) -> list[int]:
    return [
        r["pid"]
        for r in await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
        )
    ]


async def test_a_killed_listen_connection_is_reopened_and_wakes_followers_again(
    postgres_driver_url: str,
) -> None:
    """With polling every 30 s, only the reopened LISTEN connection can deliver other
    loggers' events within milliseconds; what committed while it was gone is read
    as soon as it is back."""
    async with (
        EventLogger.open(postgres_driver_url, poll_interval=30) as reader,
        EventLogger.open(postgres_driver_url, migrate=False) as writer,
        _admin(postgres_driver_url) as admin,
    ):
        follower = reader.follow()
        first = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        listener = reader._followers._listener
        assert isinstance(listener, ReopeningListener)
        (old_pid,) = await _listen_pids(admin)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        during = await writer.log_event("task.created", "while nobody listened")
        assert await asyncio.wait_for(first, 2) == during  # 2 s, far below the 30 s poll

        async def reopened() -> bool:
            return listener.reopened == 1 and len(await _listen_pids(admin)) == 1

        await _until(reopened, "the LISTEN connection to be reopened")
        (new_pid,) = await _listen_pids(admin)
        assert new_pid != old_pid
        await asyncio.sleep(5)
        latencies = []
        for i in range(7):
            waiting = asyncio.ensure_future(follower.__anext__())
            await asyncio.sleep(0.01)  # the follower is waiting for a wake-up
            sent = time.perf_counter()
            event = await writer.log_event("task.started", f"later {i}")
            assert await asyncio.wait_for(waiting, 2) == event
            latencies.append(time.perf_counter() - sent)
    median = statistics.median(latencies)
    assert median < 0.05, latencies
    print(f"\nafter the LISTEN connection was killed: median delivery {median * 1000:.1f} ms")


# -- timeouts and locks ----------------------------------------------------------------------


async def test_a_timed_out_batch_answers_all_its_callers_at_once(postgres_driver_url: str) -> None:
    """statement_timeout 1 s and the table locked for 6 s: 20 callers (in a shared
    batch or two) hear back within one or two timeouts, not one after another."""
    async with (
        _logger(postgres_driver_url, {"statement_timeout": "1000"}) as log,
        _admin(postgres_driver_url) as holder,
    ):
        await log.log_event("system.info", "before the lock")
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE")
        locked_at = time.perf_counter()
        waits: list[float] = []
        errors: list[StorageError] = []

        async def caller(n: int) -> None:
            await asyncio.sleep(n * 0.01)  # callers keep arriving while the first batch waits
            asked = time.perf_counter()
            try:
                await log.log_event("tool.called", f"caller {n}")
            except StorageError as exc:
                errors.append(exc)
            waits.append(time.perf_counter() - asked)

        async def reader() -> StorageError:
            with pytest.raises(StorageError) as raised:
                await log.list_events()
            return raised.value

        try:
            *_, read_error = await asyncio.gather(*(caller(n) for n in range(20)), reader())
        finally:
            await asyncio.sleep(max(0.0, 6 - (time.perf_counter() - locked_at)))
            await holder.execute("COMMIT")
        assert isinstance(read_error, StorageError)
        assert len(errors) == 20
        assert max(waits) < 3, sorted(waits)
        for error in [*errors, read_error]:
            assert "statement_timeout" in str(error), error
            assert isinstance(error.__cause__, Exception)
        assert str(errors[0]) == (
            "writing 1 event failed: the statement ran past the server's statement_timeout "
            "and was cancelled; nothing of it was stored"
        )
        assert str(read_error).startswith("reading events failed: the statement ran past")
        # The lock is gone: the same logger writes again, nothing of the failed ones stored.
        await log.log_event("system.info", "after the lock")
        assert await log.count_events() == 2
        assert log.stats.failed == 20
    print(f"\n20 callers behind a lock, statement_timeout 1 s: slowest answer {max(waits):.2f} s")


# -- plain words -----------------------------------------------------------------------------

STATE_MACHINE = "cannot switch to state 12; another operation (2) is in progress"


async def test_a_driver_state_machine_error_is_told_as_a_lost_connection(
    postgres_only_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with EventLogger.open(postgres_only_url) as log:
        await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        calls = 0

        async def stuck(driver: Any, sql: str, *args: Any) -> Any:
            nonlocal calls
            calls += 1
            raise asyncpg.InternalClientError(STATE_MACHINE)

        monkeypatch.setattr(sink, "_execute", stuck)
        with pytest.raises(StorageError) as raised:
            await log.log_event("task.started", "c")
        # The sink tried it twice (the second time on a new connection), and the
        # writer had it tried once more as a whole: twice again.
        assert calls == 4
        message = str(raised.value)
        assert message == (
            "writing 1 event failed: the connection to the database was lost; "
            "it may or may not have been stored (never twice)"
        )
        assert isinstance(raised.value.__cause__, asyncpg.InternalClientError)
        assert str(raised.value.__cause__) == STATE_MACHINE
        monkeypatch.undo()
        await log.log_event("task.completed", "c")  # and the logger carries on
        assert server_pid(sink) != pid  # on a new connection: the stuck one was dropped
        assert await log.count_events() == 2


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.InternalClientError(STATE_MACHINE),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionResetError(104, "Connection reset by peer"),
        psycopg.OperationalError("the connection is closed"),
        psycopg.OperationalError("consuming input failed: server closed the connection"),
    ],
    ids=lambda exc: f"{type(exc).__name__}: {exc}"[:50],
)
def test_every_way_a_driver_says_the_connection_died_reads_the_same(failure: Exception) -> None:
    """As the sink meets it (raised by the driver) and as a read does (wrapped by SQLAlchemy)."""
    lost = "the connection to the database was lost"
    assert failure_kind(failure) == "lost"
    written = as_storage_error("writing 1 event", failure)
    assert str(written) == f"writing 1 event failed: {lost}"
    assert written.__cause__ is failure
    wrapped = sqlalchemy.exc.InterfaceError("SELECT 1", {}, failure)
    wrapped.__cause__ = failure
    assert failure_kind(wrapped) == "lost"
    with pytest.raises(StorageError) as raised, translate_storage_errors("reading events"):
        raise wrapped
    assert str(raised.value) == f"reading events failed: {lost}"
    assert raised.value.__cause__ is wrapped


def test_a_statement_that_failed_on_its_own_keeps_the_servers_words() -> None:
    failure = asyncpg.UniqueViolationError('duplicate key value violates unique constraint "pk"')
    assert failure_kind(failure) == "other"
    with pytest.raises(StorageError) as raised, translate_storage_errors("importing 1 event(s)"):
        raise sqlalchemy.exc.IntegrityError("INSERT ...", {}, failure) from failure
    assert str(raised.value) == (
        'importing 1 event(s) failed: duplicate key value violates unique constraint "pk"'
    )


# -- follow() through faults -----------------------------------------------------------------

FOLLOWER_APP = "event-log-fault-follower"


async def test_a_follower_whose_connections_are_killed_yields_every_event_once(
    postgres_driver_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The follower's read and LISTEN connections are killed again and again while another
    logger writes, and its reads time out behind a lock: it rides it all out."""
    total = 300
    async with (
        _logger(
            postgres_driver_url,
            {"application_name": FOLLOWER_APP, "statement_timeout": "300"},
            poll_interval=0.2,
        ) as reader,
        EventLogger.open(postgres_driver_url, migrate=False) as writer,
        _admin(postgres_driver_url) as admin,
    ):
        follower = reader.follow()
        seen: list[str] = []

        async def follow() -> None:
            async for event in follower:
                seen.append(event.id)
                if len(seen) == total:
                    return

        following = asyncio.ensure_future(follow())
        await started(follower)
        written: list[str] = []
        rng = random.Random(7)

        async def write() -> None:
            for i in range(total):
                written.append((await writer.log_event("tool.called", "w", data={"i": i})).id)
                await asyncio.sleep(rng.choice([0, 0.001, 0.005]))
                if i == total // 2:
                    # The follower's reads time out (300 ms) while the table is locked (1 s).
                    await admin.execute("BEGIN")
                    await admin.execute("LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE")
                    await asyncio.sleep(1)
                    await admin.execute("COMMIT")

        async def kill() -> int:
            killed = 0
            async with _admin(postgres_driver_url) as killer:
                while not following.done() and len(written) < total:
                    await asyncio.sleep(rng.uniform(0.002, 0.03))
                    killed += len(
                        await killer.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND application_name = $1",
                            FOLLOWER_APP,
                        )
                    )
            return killed

        with caplog.at_level(logging.WARNING, logger="event_log"):
            *_, killed = await asyncio.gather(write(), kill())
            await asyncio.wait_for(following, 20)
    assert killed > 10  # the faults really happened
    assert "following events: " in caplog.text  # and some reads failed, then went again
    assert seen == written  # every event, once, in commit order
    outages = caplog.text.count("trying again")
    print(f"\nfollower: {killed} backends killed, {outages} runs of failed reads, {total} events")


async def test_close_rides_out_a_follower_connection_killed_just_before(
    postgres_driver_url: str,
) -> None:
    """close() lets every follower read what was committed; a connection of theirs killed
    a moment before is replaced for that read, not raised from close()."""
    async with EventLogger.open(postgres_driver_url, migrate=False) as writer:
        reader_cm = _logger(postgres_driver_url, {"application_name": FOLLOWER_APP})
        reader = await reader_cm.__aenter__()
        follower = reader.follow()
        pending = asyncio.ensure_future(anext(follower))
        await started(follower)
        first = await writer.log_event("task.created", "w")
        assert (await pending).id == first.id
        last = await writer.log_event("task.completed", "w")
        async with _admin(postgres_driver_url) as killer:
            killed = await killer.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = $1",
                FOLLOWER_APP,
            )
        assert killed  # the follower's connections are gone
        await reader_cm.__aexit__(None, None, None)  # close(): drains the follower
        assert [event.id async for event in follower] == [last.id]


async def test_a_follower_gives_up_after_its_limit_and_resumes_when_iterated_again(
    postgres_driver_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_module, "RETRY_FOR", 0.5)
    async with (
        _logger(postgres_driver_url, {"statement_timeout": "100"}) as reader,
        EventLogger.open(postgres_driver_url, migrate=False) as writer,
        _admin(postgres_driver_url) as holder,
    ):
        follower = reader.follow()
        waiting = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        first = await writer.log_event("task.created", "c")
        assert await asyncio.wait_for(waiting, 5) == first
        await holder.execute("BEGIN")
        await holder.execute("LOCK TABLE event_log IN ACCESS EXCLUSIVE MODE")
        try:
            asked = time.perf_counter()
            with pytest.raises(StorageError) as raised:
                await asyncio.wait_for(follower.__anext__(), 10)
            gave_up_after = time.perf_counter() - asked
        finally:
            await holder.execute("COMMIT")
        assert 0.5 <= gave_up_after < 3
        assert str(raised.value) == (
            "following events failed: the statement ran past the server's statement_timeout "
            "and was cancelled, for 0.5 s on end; iterate the follower again to resume after "
            "the last event it yielded"
        )
        assert raised.value.__cause__ is not None
        second = await writer.log_event("task.started", "c")
        assert await asyncio.wait_for(follower.__anext__(), 5) == second  # resumed, once
        third = await writer.log_event("task.completed", "c")
        assert await asyncio.wait_for(follower.__anext__(), 5) == third
