"""Time partitioning on PostgreSQL: converting, partitions ahead, DEFAULT rows, pruning.

The contract suite also runs on a partitioned table (the ``postgres-partitioned``
backend of ``conftest.ALL_BACKENDS``); these tests cover what only partitioning has.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from click.testing import Result
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import event_log
from cli_helpers import cli, fails, ok
from event_log import EventLogger
from event_log._engine import create_engine, resolve_url
from event_log._migrate import alembic_config
from event_log._models import prepare_event
from event_log.backends.postgresql._partitions import (
    DEFAULT_PARTITION,
    detach_expired,
    list_partitions,
    partition_name,
    partitioning,
    period_start,
    set_partitioning,
)
from follow_helpers import started

pytestmark = pytest.mark.postgres


def now() -> datetime:
    return datetime.now(UTC)


def today() -> datetime:
    return period_start(now(), "day")


def noon(days_ago: int) -> datetime:
    return today() - timedelta(days=days_ago) + timedelta(hours=12)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database (which postgres_only_url / partitioned_url reset)."""
    engine = create_engine(resolve_url(postgres_url))
    yield engine
    await engine.dispose()


async def _exists(engine: AsyncEngine, name: str) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
    return bool(found)


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text(f'SELECT count(*) FROM "{table}"')) or 0)


async def _partition_names(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return [p.name for p in await conn.run_sync(list_partitions)]


async def _layout(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(partitioning)


async def acli(*args: str) -> Result:
    """The command line from a test on the loop (it runs asyncio.run itself)."""
    return await asyncio.to_thread(cli, *args)


def _day(days_ahead: int) -> str:
    return partition_name(today() + timedelta(days=days_ahead), "day")


# -- converting ---------------------------------------------------------------------------


async def test_converting_a_populated_table_keeps_every_row(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(postgres_only_url) as log:
        when = [noon(40), noon(40), noon(3), now(), now() + timedelta(days=400)]
        written = [
            await log.log_event("task.created", "c", task_id=f"t{i}", timestamp=t)
            for i, t in enumerate(when)
        ]
        # More than COPY_MIN_ROWS in one transaction, too.
        written += await log.log_events(
            [{"event_type": "tool.called", "source": "a", "timestamp": noon(3)}] * 100
        )
        before = await log.list_events(limit=1000, newest_first=False)
    async with engine.connect() as conn:
        xids = dict((await conn.execute(text("SELECT id, xid FROM event_log"))).all())
    assert None not in xids.values()

    await event_log.upgrade(postgres_only_url, partition="day")

    assert await _layout(engine) == "day"
    names = await _partition_names(engine)
    for t in when:
        assert partition_name(period_start(t, "day"), "day") in names
    assert _day(7) in names  # and the current day plus 7 ahead
    assert await _count(engine, partition_name(period_start(noon(3), "day"), "day")) == 101
    assert await _count(engine, DEFAULT_PARTITION) == 0
    async with engine.connect() as conn:  # each row keeps its transaction's id
        assert dict((await conn.execute(text("SELECT id, xid FROM event_log"))).all()) == xids

    async with EventLogger.open(postgres_only_url) as log:
        after = await log.list_events(limit=1000, newest_first=False)
        assert after.events == before.events
        assert await log.get_event(written[0].id) == written[0]
        assert await log.get_task_events("t2") == [written[2]]
        follow = log.follow()
        first = asyncio.ensure_future(anext(follow))
        await started(follow)  # iterating: new commits from here on
        new = await log.log_event("task.completed", "c")
        assert await asyncio.wait_for(first, 10) == new
        await follow.aclose()
    async with engine.connect() as conn:  # the partitions have the column's default
        new_xid = text("SELECT xid FROM event_log WHERE id = :id")
        assert await conn.scalar(new_xid, {"id": new.id}) > max(xids.values())


async def test_converting_back_to_a_plain_table_keeps_every_row(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(partitioned_url) as log:
        events = [
            await log.log_event("task.created", "c", timestamp=t)
            for t in (noon(2), now(), datetime(2000, 1, 1, tzinfo=UTC))
        ]
    await event_log.upgrade(partitioned_url, partition="none")
    assert await _layout(engine) is None
    assert not await _exists(engine, DEFAULT_PARTITION)
    async with EventLogger.open(partitioned_url) as log:
        assert sorted(e.id for e in (await log.list_events()).events) == sorted(
            e.id for e in events
        )
    ok(await acli(partitioned_url, "db", "check"))
    async with engine.connect() as conn:
        default = await conn.scalar(
            text(
                "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = "
                "'event_log'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE "
                "attrelid = 'event_log'::regclass AND attname = 'xid')"
            )
        )
    assert "pg_current_xact_id()" in default  # writers' rows still get their xid


async def test_a_partitioned_table_matches_the_model(partitioned_url: str) -> None:
    ok(await acli(partitioned_url, "db", "check"))


async def test_partitioning_twice_the_same_way_only_adds_partitions_ahead(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    await event_log.upgrade(partitioned_url, partition="day", partition_ahead=10)
    names = await _partition_names(engine)
    assert names[-1] == _day(10)


async def test_monthly_partitions(postgres_only_url: str, engine: AsyncEngine) -> None:
    await event_log.upgrade(postgres_only_url, partition="month", partition_ahead=3)
    assert await _layout(engine) == "month"
    names = await _partition_names(engine)
    assert names[0] == partition_name(period_start(now(), "month"), "month")
    assert len(names) == 4
    assert all(len(n) == len("event_log_p202611") for n in names)


async def test_the_alembic_command_partitions_with_x_partition(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    from test_migrations import alembic_cli
    from test_migrations import ok as alembic_ok

    alembic_ok(alembic_cli("-x", "partition=month", "upgrade", "head", url=postgres_only_url))
    assert await _layout(engine) == "month"


# -- partitions ahead and the DEFAULT partition ----------------------------------------------


async def test_a_logger_creates_partitions_ahead_when_it_opens(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(partitioned_url, partitions_ahead=12):
        names = await _partition_names(engine)
    assert _day(0) in names
    assert _day(12) in names
    assert _day(13) not in names


async def test_events_outside_every_partition_go_to_default_and_are_queryable(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(partitioned_url) as log:
        old = await log.log_event("task.created", "c", timestamp=datetime(2000, 1, 1, tzinfo=UTC))
        future = await log.log_event(
            "task.created", "c", timestamp=datetime(2100, 1, 1, tzinfo=UTC)
        )
        today = await log.log_event("task.created", "c")
        assert await _count(engine, DEFAULT_PARTITION) == 2
        assert await _count(engine, _day(0)) == 1
        assert await log.get_event(old.id) == old
        assert (await log.list_events()).events == [future, today, old]
        assert await log.count_events(until=now() - timedelta(days=1)) == 1


async def test_a_new_partition_takes_its_rows_from_default(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(partitioned_url) as log:
        later = await log.log_event("task.created", "c", timestamp=now() + timedelta(days=20))
        assert await _count(engine, DEFAULT_PARTITION) == 1
        created = await log.ensure_partitions(ahead=25)
        assert created == [_day(n) for n in range(8, 26)]
        assert await _count(engine, DEFAULT_PARTITION) == 0
        assert await _count(engine, _day(20)) == 1
        assert await log.get_event(later.id) == later
        assert await log.ensure_partitions(ahead=25) == []


async def test_loggers_creating_the_same_partitions_at_once_take_turns(
    partitioned_url: str, engine: AsyncEngine
) -> None:
    async with (
        EventLogger.open(partitioned_url) as first,
        EventLogger.open(partitioned_url) as second,
    ):
        await first.log_event("task.created", "c", timestamp=now() + timedelta(days=15))
        created = await asyncio.gather(
            *(log.ensure_partitions(ahead=30) for log in (first, second, first, second))
        )
        everything = [name for names in created for name in names]
        assert sorted(everything) == [_day(n) for n in range(8, 31)]  # each made once
        assert await _count(engine, _day(15)) == 1


# -- pruning ------------------------------------------------------------------------------


async def _populated_partitioned(url: str) -> dict[str, list[event_log.Event]]:
    """Events over the last 40 days in a table then partitioned by day, and one of the
    year 2000 in the DEFAULT partition."""
    async with EventLogger.open(url) as log:

        async def at(when: datetime) -> event_log.Event:
            return await log.log_event("task.created", "c", timestamp=when)

        events = {
            "dropped": [await at(noon(40)), await at(noon(40)), await at(noon(35))],
            "boundary": [await at(now() - timedelta(days=30, minutes=1))],
            "kept": [await at(now() - timedelta(days=29)), await at(now() - timedelta(hours=1))],
        }
        events["dropped"].append(await at(noon(31)))
    await event_log.upgrade(url, partition="day")
    async with EventLogger.open(url) as log:
        events["ancient"] = [await at_default(log)]
    return events


async def at_default(log: EventLogger) -> event_log.Event:
    return await log.log_event("task.created", "c", timestamp=datetime(2000, 1, 1, tzinfo=UTC))


async def test_prune_drops_whole_expired_partitions_and_deletes_the_rest(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    events = await _populated_partitioned(postgres_only_url)
    expired = sorted(
        {partition_name(period_start(e.timestamp, "day"), "day") for e in events["dropped"]}
    )
    boundary = partition_name(period_start(events["boundary"][0].timestamp, "day"), "day")
    assert await _count(engine, DEFAULT_PARTITION) == 1
    async with EventLogger.open(postgres_only_url) as log:
        deleted = await log.prune_events(30)
        assert deleted == 4 + 1 + 1  # three partitions' rows, the boundary row, the ancient one
        for name in expired:
            assert not await _exists(engine, name), name
        assert await _exists(engine, boundary)
        remaining = (await log.list_events()).events
        assert sorted(e.id for e in remaining) == sorted(e.id for e in events["kept"])
        assert await log.prune_events(30) == 0


async def test_dry_run_and_prune_agree_on_a_partitioned_table(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    await _populated_partitioned(postgres_only_url)
    assert (
        "Would delete 6 events"
        in ok(await acli(postgres_only_url, "prune", "--older-than", "30d", "--dry-run")).stdout
    )
    assert (
        "Deleted 6 events"
        in ok(await acli(postgres_only_url, "prune", "--older-than", "30d", "--yes")).stdout
    )


async def test_a_longer_override_keeps_the_partitions_holding_its_type(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(postgres_only_url) as log:
        kept = await log.log_event("system.error", "c", timestamp=noon(40))
        gone = await log.log_event("tool.called", "c", timestamp=noon(40))
    await event_log.upgrade(postgres_only_url, partition="day")
    name = partition_name(period_start(noon(40), "day"), "day")
    async with EventLogger.open(postgres_only_url) as log:
        assert await log.prune_events(30, overrides={"system.error": 90}) == 1
        assert await _exists(engine, name)  # not every rule deletes all of it
        assert (await log.list_events()).events == [kept]
        assert await log.get_event(gone.id) is None
        # A shorter override does not hold a partition back.
        assert await log.prune_events(30, overrides={"tool.*": 7}) == 1
        assert not await _exists(engine, name)


async def test_a_prune_interrupted_after_detaching_is_finished_by_the_next(
    postgres_only_url: str, engine: AsyncEngine
) -> None:
    async with EventLogger.open(postgres_only_url) as log:
        await log.log_event("task.created", "c", timestamp=noon(40))
    await event_log.upgrade(postgres_only_url, partition="day")
    async with engine.begin() as conn:  # the first step of a prune, then a "crash"
        detached = await conn.run_sync(detach_expired, now() - timedelta(days=30))
    assert detached == ["event_log_expired_" + _day(-40).removeprefix("event_log_")]
    async with EventLogger.open(postgres_only_url) as log:
        assert await log.count_events() == 0  # no longer part of event_log
        assert await log.prune_events(30) == 1  # counted and dropped
    assert not await _exists(engine, detached[0])


# -- importing ----------------------------------------------------------------------------


async def test_import_skips_stored_ids_on_a_partitioned_table(partitioned_url: str) -> None:
    # The primary key is (id, timestamp) there: an id stored on another day is still a duplicate.
    events = [prepare_event("task.created", "c", max_data_bytes=100).event for _ in range(3)]
    async with EventLogger.open(partitioned_url) as log:
        assert (await log.import_events(events)).imported == 3
        moved = events[0].model_copy(update={"timestamp": events[0].timestamp - timedelta(days=3)})
        again = await log.import_events([*events, moved])
        assert (again.imported, again.already_present) == (0, 4)
        new = prepare_event("task.created", "c", max_data_bytes=100).event
        assert (await log.import_events([new, new])).imported == 1
        assert await log.count_events() == 4


# -- the command line ---------------------------------------------------------------------


async def test_db_partition_command(postgres_only_url: str, engine: AsyncEngine) -> None:
    url = postgres_only_url
    out = ok(await acli(url, "db", "partition", "--by", "day")).stdout
    assert "from an empty schema to" in out
    assert "is now partitioned by day: 8 partitions" in out
    out = ok(await acli(url, "db", "partition", "--by", "day", "--ahead", "9")).stdout
    assert f"is already partitioned by day: 10 partitions, {_day(0)} to {_day(9)}" in out
    month = await acli(url, "db", "partition", "--by", "month")
    fails(month, 1, "already partitioned by day")
    out = ok(await acli(url, "db", "partition", "--by", "none")).stdout
    assert "is now a plain table" in out
    out = ok(await acli(url, "db", "partition", "--by", "none")).stdout
    assert "is already a plain table" in out
    assert await _layout(engine) is None


def test_db_partition_command_on_sqlite(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/events.db"
    fails(cli(url, "db", "partition", "--by", "day"), 2, "needs PostgreSQL")
    assert "plain table" in ok(cli(url, "db", "partition", "--by", "none")).stdout


# -- errors -------------------------------------------------------------------------------


async def test_sqlite_cannot_be_partitioned(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.db"
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        await event_log.upgrade(url, partition="day")
    await event_log.upgrade(url, partition="none")  # nothing to undo: a no-op
    async with EventLogger.open(url) as log:
        assert await log.ensure_partitions() == []
        await log.log_event("task.created", "c")
        assert await log.prune_events(0) == 1


async def test_mariadb_refuses_partitioning_before_any_revision_runs(
    mariadb_only_url: str,
) -> None:
    # MariaDB commits DDL as it goes: a refusal after the revisions left them applied.
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        await event_log.upgrade(mariadb_only_url, partition="month")
    engine = create_engine(make_url(mariadb_only_url))
    try:
        async with engine.connect() as conn:
            tables = (await conn.exec_driver_sql("SHOW TABLES")).scalars().all()
    finally:
        await engine.dispose()
    assert tables == []


async def test_bad_partition_arguments(tmp_path: object) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/events.db"
    with pytest.raises(ValueError, match="partition must be one of"):
        await event_log.upgrade(url, partition="week")
    with pytest.raises(ValueError, match="partition_ahead must be >= 0"):
        await event_log.upgrade(url, partition="day", partition_ahead=-1)
    engine = create_engine(resolve_url(url))
    try:
        with pytest.raises(ValueError, match="partitions_ahead must be >= 0"):
            EventLogger(engine, partitions_ahead=-1)
        with pytest.raises(ValueError, match="partition_check_minutes must be > 0"):
            EventLogger(engine, partition_check_minutes=0)
    finally:
        await engine.dispose()
    async with EventLogger.open(url) as log:
        assert await log.ensure_partitions(ahead=-1) == []  # SQLite: nothing to check


async def test_partition_errors_on_postgresql(partitioned_url: str, engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="already partitioned by day"):
        await event_log.upgrade(partitioned_url, partition="month")
    async with EventLogger.open(partitioned_url) as log:
        with pytest.raises(ValueError, match="ahead must be >= 0"):
            await log.ensure_partitions(ahead=-1)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE event_log")
        with pytest.raises(ValueError, match="no event_log table"):
            await conn.run_sync(set_partitioning, "day")


def test_offline_sql_cannot_partition() -> None:
    config = alembic_config()
    config.attributes["partition"] = "day"
    config.stdout = io.StringIO()
    config.cmd_opts = None
    config.set_main_option("sqlalchemy.url", "postgresql://postgres@127.0.0.1/x")
    with pytest.raises(ValueError, match="needs an online upgrade"):
        command.upgrade(config, "head", sql=True)


async def test_stats_add_up_the_partitions(partitioned_url: str) -> None:
    async with EventLogger.open(partitioned_url) as log:
        await log.log_events([{"event_type": "task.created", "source": "c"}] * 100)
        await log.log_event("task.created", "c", timestamp=datetime(2000, 1, 1, tzinfo=UTC))
        await log.prune_events(30)  # the DEFAULT partition's row: one dead row
    stats = json.loads(ok(await acli(partitioned_url, "stats", "--format", "json")).stdout)
    assert stats["rows"] == 100
    assert stats["size_bytes"] > 8192 * 8  # the partitions' heaps and indexes
    assert stats["dead_rows"] is not None


async def test_downgrade_and_upgrade_again_on_a_partitioned_table(partitioned_url: str) -> None:
    from test_migrations import alembic_on

    async with EventLogger.open(partitioned_url) as log:
        event = await log.log_event("task.created", "c")
    await alembic_on(partitioned_url, "downgrade", "0001")
    await alembic_on(partitioned_url, "upgrade", "head")  # 0002's seq index: plain, then gone
    ok(await acli(partitioned_url, "db", "check"))
    async with EventLogger.open(partitioned_url) as log:
        assert await log.get_event(event.id) == event
        await log.log_event("task.created", "c")
    await alembic_on(partitioned_url, "downgrade", "base")
    await event_log.upgrade(partitioned_url)


async def test_prune_deletes_instead_when_event_log_stays_locked(
    postgres_only_url: str,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import event_log._retention

    monkeypatch.setattr(event_log._retention, "PARTITION_LOCK_TIMEOUT_MS", 100)
    async with EventLogger.open(postgres_only_url) as log:
        await log.log_event("task.created", "c", timestamp=noon(40))
        await log.log_event("task.created", "c", timestamp=noon(40))
    await event_log.upgrade(postgres_only_url, partition="day")
    name = partition_name(period_start(noon(40), "day"), "day")
    async with EventLogger.open(postgres_only_url) as log, engine.connect() as reader:
        await reader.execute(text("SELECT count(*) FROM event_log"))  # holds its lock
        with caplog.at_level(logging.WARNING, logger="event_log"):
            assert await log.prune_events(30) == 2  # by DELETE, without waiting
        assert "pruned by DELETE this time" in caplog.text
        assert await _exists(engine, name)
        await reader.rollback()
        assert await log.prune_events(30) == 0
        assert not await _exists(engine, name)  # the empty partition goes next time
