"""PostgreSQL through psycopg 3 (``postgresql+psycopg://``): what only that driver does.

The contract suite runs on it (the ``postgres-psycopg`` backend of
``conftest.ALL_BACKENDS``), and the sink tests run on both drivers
(``test_pg_sink``, ``test_pg_stream``, ``test_pg_columns``). Here: a caller's own
psycopg engine, the LISTEN connection, a connection lost or a batch cancelled
half-way, how failures are told apart, and PostgreSQL's own tests that take
``postgres_only_url`` (asyncpg, which the command line needs) run through
psycopg too, where they do not use the command line.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import psycopg
import psycopg.errors
import pytest
import test_data_index
import test_partition
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import test_faults
import test_follow
import test_many_writers
from event_log import EventLogger, MissingDriverError, upgrade
from event_log._models import Row, prepare_event
from event_log.backends import backend_for_url
from event_log.backends.postgresql import BACKEND
from event_log.backends.postgresql._psycopg import PsycopgListener, PsycopgSink
from event_log.backends.postgresql._psycopg import lost_connection as psycopg_lost
from event_log.backends.postgresql._sink import PG_STATEMENT_MAX_ROWS
from follow_helpers import started
from pg_helpers import pg_sink, server_pid

LARGE = 4 * PG_STATEMENT_MAX_ROWS  # a COPY batch


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _asyncpg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _admin(url: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


def _rows(n: int) -> list[Row]:
    return [prepare_event("tool.called", "s", max_data_bytes=100).row for _ in range(n)]


async def _until(condition: Any, what: str) -> None:
    """Wait for ``condition()`` to hold (a guard against hanging, not a measured time)."""
    for _ in range(2000):
        if await condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"still waiting for {what}")


@pytest.fixture
async def engine(psycopg_only_url: str) -> AsyncIterator[AsyncEngine]:
    """A caller's own psycopg engine on a database with the schema in place."""
    await upgrade(psycopg_only_url)
    engine = create_async_engine(psycopg_only_url)
    yield engine
    await engine.dispose()


# -- the URL --------------------------------------------------------------------------------


def test_a_psycopg_url_is_served_by_the_postgresql_backend() -> None:
    assert backend_for_url(make_url("postgresql+psycopg://u@h/db")) is BACKEND


async def test_a_missing_psycopg_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else found(name, *a)
    )
    with pytest.raises(MissingDriverError, match=re.escape("pip install 'event-log[psycopg]'")):
        await EventLogger.open("postgresql+psycopg://u@h/db")


async def test_an_unsupported_driver_is_told_both_drivers() -> None:
    with pytest.raises(ValueError, match="use postgresql\\+asyncpg:// or postgresql\\+psycopg://"):
        await EventLogger.open("postgresql+pg8000://u@h/db")


# -- telling a lost connection from a failed statement ---------------------------------------


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (psycopg.OperationalError("consuming input failed: server closed the connection"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.ConnectionFailure("connection failure"), True),
        (ConnectionResetError(), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.QueryCanceled("canceling statement"), False),
        (psycopg.errors.LockNotAvailable("lock timeout"), False),
        (psycopg.errors.DiskFull("no space"), False),
        (ValueError("x"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_lost_connection_is_told_from_a_failed_statement(exc: BaseException, lost: bool) -> None:
    assert psycopg_lost(exc) is lost
    assert BACKEND.lost_connection(exc) is lost  # the backend asks the raising driver


def test_the_backend_asks_asyncpg_about_its_own_errors() -> None:
    assert BACKEND.lost_connection(asyncpg.ConnectionDoesNotExistError("gone"))
    assert not BACKEND.lost_connection(asyncpg.UniqueViolationError("duplicate key"))


# -- a caller's engine ------------------------------------------------------------------------


async def test_a_callers_psycopg_engine_logs_reads_and_follows(
    engine: AsyncEngine, psycopg_only_url: str
) -> None:
    async with EventLogger(engine, poll_interval=3600) as log:
        assert isinstance(log._writer._sink, PsycopgSink)
        first = await log.log_event("task.created", "c", data={"n": 1, "x": [1.5, None, "é"]})
        assert await log.get_event(first.id) == first
        assert first.data == {"n": 1, "x": [1.5, None, "é"]}
        batch = await log.log_events(
            [{"event_type": "tool.called", "source": "s", "data": {"i": i}} for i in range(LARGE)]
        )
        assert await log.count_events(data_contains={"i": 7}) == 1
        follower = log.follow()
        waiting = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        # Another logger, through asyncpg: only the NOTIFY can wake this follower
        # (it polls once an hour).
        async with EventLogger.open(_asyncpg_url(psycopg_only_url), migrate=False) as other:
            written = await other.log_event("task.started", "other")
        assert await asyncio.wait_for(waiting, 10) == written
        assert isinstance(log._followers._listener, PsycopgListener)
    assert await _admin(psycopg_only_url, "SELECT count(*) FROM event_log") == 2 + len(batch)


async def test_the_callers_engine_gets_its_connections_back_as_they_were(
    engine: AsyncEngine,
) -> None:
    async with EventLogger(engine) as log:
        follower = log.follow()
        waiting = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        listener = log._followers._listener
        assert isinstance(listener, PsycopgListener)
        await log.log_event("task.created", "c")  # the sink's connection, in autocommit
        await waiting
    assert listener._task.cancelled()  # the reader stopped
    # Every connection the logger held is back in the pool, alive: no longer in
    # autocommit (a rolled back update leaves nothing) and listening to nothing.
    assert not listener._driver.closed
    held = engine.pool.checkedin()  # type: ignore[attr-defined]
    assert held >= 2
    connections = [await engine.connect() for _ in range(held)]
    try:
        for conn in connections:
            driver = (await conn.get_raw_connection()).driver_connection
            assert isinstance(driver, psycopg.AsyncConnection)
            assert not driver.autocommit
            assert await conn.scalar(text("SELECT count(*) FROM pg_listening_channels()")) == 0
            await conn.execute(text("UPDATE event_log SET source = 'changed'"))
            await conn.rollback()
            assert await conn.scalar(text("SELECT source FROM event_log")) == "c"
    finally:
        for conn in connections:
            await conn.close()


# -- LISTEN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reader", "writer"), [("psycopg", "asyncpg"), ("asyncpg", "psycopg")])
async def test_a_commit_through_one_driver_wakes_a_follower_on_the_other(
    psycopg_only_url: str, reader: str, writer: str
) -> None:
    urls = {"psycopg": psycopg_only_url, "asyncpg": _asyncpg_url(psycopg_only_url)}
    async with (
        EventLogger.open(urls[reader], poll_interval=3600) as reader_log,
        EventLogger.open(urls[writer]) as writer_log,
    ):
        follower = reader_log.follow()
        for i, size in enumerate([1, LARGE, 1]):  # a statement, a COPY, a statement
            waiting = asyncio.ensure_future(follower.__anext__())
            if i == 0:
                await started(follower)
            written = await writer_log.log_events(
                [{"event_type": "tool.called", "source": f"w{i}"}] * size
            )
            assert await asyncio.wait_for(waiting, 10) == written[0]
            for expected in written[1:]:
                assert await asyncio.wait_for(follower.__anext__(), 10) == expected


async def test_a_lost_listen_connection_is_reopened(
    psycopg_only_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        EventLogger.open(psycopg_only_url, poll_interval=3600) as reader_log,
        EventLogger.open(psycopg_only_url) as writer_log,
    ):
        follower = reader_log.follow()
        waiting = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        listener = reader_log._followers._listener
        assert isinstance(listener, PsycopgListener)
        assert listener._driver is not None
        pid = listener._driver.info.backend_pid
        with caplog.at_level(logging.WARNING, logger="event_log"):
            await _admin(psycopg_only_url, "SELECT pg_terminate_backend($1)", pid)

            async def reopened() -> bool:
                return listener.reopened == 1

            await _until(reopened, "the LISTEN connection to be reopened")
        assert "lost the connection listening for commits" in caplog.text
        assert listener._driver.info.backend_pid != pid
        written = await writer_log.log_event("task.created", "elsewhere")
        assert await asyncio.wait_for(waiting, 10) == written  # woken, not polled
    # Closing the logger closed the reopened listener without an error.


# -- the sink's faults ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, LARGE], ids=["statement", "streamed-copy"])
async def test_a_connection_the_server_ended_fails_once_then_goes_again(
    psycopg_only_url: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with EventLogger.open(psycopg_only_url) as log:
        await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        await _admin(psycopg_only_url, "SELECT pg_terminate_backend($1)", pid)
        failures: list[BaseException] = []
        recover = sink._recover

        async def watched(exc: BaseException) -> None:
            failures.append(exc)
            await recover(exc)

        monkeypatch.setattr(sink, "_recover", watched)
        # psycopg finds the connection gone only when it uses it: the write fails
        # with a lost connection, and goes again on a new one.
        await log.log_events([{"event_type": "tool.called", "source": "s"}] * size)
        assert len(failures) == 1, failures
        assert psycopg_lost(failures[0])
        assert server_pid(sink) != pid
        assert await log.count_events() == 1 + size


async def _waiting_for_a_lock(url: str, pid: int) -> bool:
    found = await _admin(url, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return bool(found == "Lock")


@pytest.mark.parametrize("streamed", [False, True], ids=["copy", "streamed-copy"])
async def test_a_batch_cancelled_while_waiting_stores_nothing_and_drops_its_connection(
    postgres_driver_url: str, streamed: bool
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        holder = await asyncpg.connect(_dsn(postgres_driver_url))
        try:
            await holder.execute("BEGIN")
            await holder.execute("LOCK TABLE event_log IN SHARE MODE")  # no inserts
            rows = _rows(LARGE)
            if streamed:
                task = asyncio.ensure_future(sink.insert_stream(LARGE, iter([rows])))
            else:
                task = asyncio.ensure_future(sink.insert(rows))
            await _until(lambda: _waiting_for_a_lock(postgres_driver_url, pid), "the insert")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert sink._driver is None  # its state was unknown: dropped
        finally:
            await holder.execute("ROLLBACK")
            await holder.close()
        await log.log_events([{"event_type": "tool.called", "source": "after"}] * 3)
        assert server_pid(sink) != pid
        assert await log.count_events() == 4
    sources = "SELECT array_agg(source ORDER BY xid, id) FROM event_log"
    stored = await _admin(postgres_driver_url, sources)
    assert stored == ["c", "after", "after", "after"]  # nothing of the cancelled batch


# -- PostgreSQL's own tests, through psycopg --------------------------------------------------


async def test_many_writer_processes_through_psycopg(psycopg_only_url: str) -> None:
    await test_many_writers.test_four_processes_of_25_tasks_lose_nothing_and_follow_in_order(
        psycopg_only_url
    )


async def test_followers_wake_on_notify_through_psycopg(psycopg_only_url: str) -> None:
    await test_follow.test_postgres_followers_wake_on_notify_not_polling(psycopg_only_url)


async def test_the_gin_index_is_built_through_psycopg(psycopg_only_url: str) -> None:
    await test_data_index.test_index_is_built_once_rebuilt_when_invalid_and_not_drift(
        psycopg_only_url
    )


async def test_data_contains_uses_the_gin_index_through_psycopg(psycopg_only_url: str) -> None:
    await test_data_index.test_data_contains_uses_the_gin_index(psycopg_only_url)


async def test_prune_drops_expired_partitions_through_psycopg(psycopg_only_url: str) -> None:
    engine = create_async_engine(psycopg_only_url)
    try:
        await test_partition.test_prune_drops_whole_expired_partitions_and_deletes_the_rest(
            psycopg_only_url, engine
        )
    finally:
        await engine.dispose()


# -- one driver never needs the other -------------------------------------------------------

_WITHOUT = textwrap.dedent(
    """
    import asyncio, importlib.abc, sys

    url, blocked = sys.argv[1], sys.argv[2]

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == blocked:
                raise ModuleNotFoundError(name)
            return None

    sys.meta_path.insert(0, Block())
    import event_log

    async def main():
        async with event_log.EventLogger.open(url, poll_interval=3600) as log:
            follower = log.follow()
            waiting = asyncio.ensure_future(follower.__anext__())
            while not follower._started:
                await asyncio.sleep(0.001)
            first = await log.log_event("task.created", "test", data={"a": 1})
            assert await waiting == first
            await log.log_events([{"event_type": "tool.called", "source": "s"}] * 600)
            assert await log.count_events() == 601
        assert blocked not in sys.modules, blocked
        print("ok")

    asyncio.run(main())
    """
)


@pytest.mark.parametrize(("driver", "blocked"), [("psycopg", "asyncpg"), ("asyncpg", "psycopg")])
def test_each_driver_works_without_the_other_installed(
    psycopg_only_url: str, driver: str, blocked: str
) -> None:
    url = make_url(psycopg_only_url).set(drivername=f"postgresql+{driver}")
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT, url.render_as_string(hide_password=False), blocked],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.fault
async def test_connections_killed_under_load_through_psycopg(psycopg_only_url: str) -> None:
    await test_faults.test_postgres_connections_killed_under_load(psycopg_only_url)
