"""follow(): a live tail in commit order, each event exactly once, on every backend."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import event_log
from event_log import EventLogger, InvalidCursorError
from follow_helpers import started, take


async def test_yields_events_committed_after_iteration_begins(log: EventLogger) -> None:
    before = await log.log_event("task.created", "c")
    follower = log.follow()
    reader = asyncio.ensure_future(take(follower, 3))
    await started(follower)
    written = [await log.log_event("task.started", "c", data={"i": i}) for i in range(3)]
    got = await reader
    assert got == written
    assert before not in got


async def test_filters_apply(log: EventLogger) -> None:
    follower = log.follow(event_type="tool.*", task_id="t1")
    reader = asyncio.ensure_future(take(follower, 2))
    await started(follower)
    await log.log_event("tool.called", "a", task_id="t2")
    first = await log.log_event("tool.called", "a", task_id="t1")
    await log.log_event("task.started", "a", task_id="t1")
    second = await log.log_event("tool.completed", "a", task_id="t1")
    assert await reader == [first, second]


async def test_a_late_commit_with_an_earlier_timestamp_is_not_skipped(log: EventLogger) -> None:
    follower = log.follow()
    reader = asyncio.ensure_future(take(follower, 3))
    await started(follower)
    now = await log.log_event("task.created", "c")
    past = await log.log_event("task.created", "c", timestamp=now.timestamp - timedelta(hours=1))
    emitted = log.emit("task.created", "c", timestamp=datetime(2000, 1, 1, tzinfo=UTC))
    assert await reader == [now, past, emitted]


async def test_cursor_first_yields_stored_events_after_it_then_live_ones(log: EventLogger) -> None:
    stored = await log.log_events([{"event_type": "task.created", "source": "c"}] * 5)
    page = await log.list_events(limit=2, newest_first=False)
    assert page.next_cursor is not None
    follower = log.follow(cursor=page.next_cursor)
    reader = asyncio.ensure_future(take(follower, 4))
    await started(follower)
    live = await log.log_event("task.started", "c")
    assert await reader == [*stored[2:], live]


async def test_event_id_cursor(log: EventLogger) -> None:
    stored = await log.log_events([{"event_type": "task.created", "source": "c"}] * 4)
    got = await take(log.follow(cursor=stored[1].id), 2)
    assert got == stored[2:]


async def test_bad_cursors_are_refused(log: EventLogger) -> None:
    await log.log_events([{"event_type": "task.created", "source": "c"}] * 3)
    newest_first = (await log.list_events(limit=1)).next_cursor
    assert newest_first is not None
    with pytest.raises(InvalidCursorError, match="newest_first"):
        log.follow(cursor=newest_first)
    with pytest.raises(InvalidCursorError):
        log.follow(cursor="")
    unknown = log.follow(cursor="0190a000-0000-7000-8000-000000000000")
    with pytest.raises(InvalidCursorError, match="no event"):
        await unknown.__anext__()
    with pytest.raises(ValueError, match="aware"):
        log.follow(since=datetime(2026, 1, 1))


async def test_close_yields_what_committed_before_it_then_stops(backend_url: str) -> None:
    log = await EventLogger.open(backend_url)
    follower = log.follow()
    first = asyncio.ensure_future(follower.__anext__())
    await started(follower)
    written = await log.log_event("task.created", "c")
    assert await first == written
    emitted = [log.emit("task.started", "c", data={"i": i}) for i in range(20)]
    await log.close()
    rest = [event async for event in follower]
    assert rest == emitted


async def test_breaking_out_stops_the_follower(log: EventLogger) -> None:
    async with log.follow() as follower:
        reader = asyncio.ensure_future(take(follower, 1))
        await started(follower)
        await log.log_event("task.created", "c")
        assert len(await reader) == 1
    with pytest.raises(StopAsyncIteration):
        await follower.__anext__()
    assert not list(log._followers._followers)


async def test_events_of_another_logger_arrive_by_polling(migratable_url: str) -> None:
    async with (
        EventLogger.open(migratable_url, poll_interval=0.05) as reader_log,
        EventLogger.open(migratable_url) as writer_log,
    ):
        follower = reader_log.follow()
        reader = asyncio.ensure_future(take(follower, 5))
        await started(follower)
        written = [await writer_log.log_event("tool.called", "other") for _ in range(5)]
        assert await reader == written


async def test_a_local_event_wakes_the_follower_without_polling(backend_url: str) -> None:
    # Polling every 30 s cannot explain an arrival within the 5 s wait: the commit woke it.
    # (How fast: the benchmark measures it, not this test.)
    async with EventLogger.open(backend_url, poll_interval=30) as log:
        follower = log.follow()
        for i in range(5):
            waiting = asyncio.ensure_future(follower.__anext__())
            await started(follower)
            await asyncio.sleep(0.005)  # it has looked and waits
            emitted = log.emit("tool.called", "a", data={"i": i})
            assert await asyncio.wait_for(waiting, 5) == emitted


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from event_log import EventLogger

    async def main(url, name, count):
        async with EventLogger.open(url, migrate=False) as log:
            for i in range(count):
                if i % 3 == 0:
                    await log.log_event("tool.called", name, data={"i": i})
                else:
                    log.emit("tool.called", name, data={"i": i})
                if i % 10 == 0:
                    await asyncio.sleep(0.001)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_three_writer_processes_and_one_follower(migratable_url: str) -> None:
    per_writer = 200
    async with EventLogger.open(migratable_url, poll_interval=0.05) as log:
        follower = log.follow(event_type="tool.called")
        reader = asyncio.ensure_future(take(follower, 3 * per_writer, seconds=60))
        await started(follower)
        writers = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", WRITER, migratable_url, f"writer-{n}", str(per_writer)
            )
            for n in range(3)
        ]
        assert [await w.wait() for w in writers] == [0, 0, 0]
        got = await reader
        await follower.aclose()  # told to stop
        with pytest.raises(StopAsyncIteration):
            await follower.__anext__()
    ids = [e.id for e in got]
    assert len(set(ids)) == 3 * per_writer
    assert {e.source for e in got} == {"writer-0", "writer-1", "writer-2"}
    engine = create_async_engine(migratable_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT id, seq, xid FROM event_log"))
            stored = {row[0]: (row[1], row[2]) for row in rows}
    finally:
        await engine.dispose()
    if migratable_url.startswith("postgresql"):
        # Transaction ids, no numbers: each transaction's events arrive together.
        assert all(stored[i][0] is None for i in ids)
        xids = [stored[i][1] for i in ids]
        runs = [x for n, x in enumerate(xids) if n == 0 or xids[n - 1] != x]
        assert len(runs) == len(set(xids))
    else:
        # Commit order: the sequence numbers of what we received only go up.
        seqs = [stored[i][0] for i in ids]
        assert seqs == sorted(seqs)
    for name in ("writer-0", "writer-1", "writer-2"):  # each writer's own order is kept
        mine = [e.data["i"] for e in got if e.source == name and e.data]
        assert mine == list(range(per_writer))


async def test_the_sequence_revision_numbers_existing_rows_in_time_order(
    migratable_url: str,
) -> None:
    from alembic import command

    from event_log._engine import create_engine, resolve_url
    from event_log._migrate import alembic_config

    engine = create_engine(resolve_url(migratable_url))
    sqlite = engine.dialect.name == "sqlite"
    mariadb = engine.dialect.name in ("mysql", "mariadb")
    postgres = engine.dialect.name == "postgresql"
    timestamp = engine.dialect.identifier_preparer.quote_identifier("timestamp")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    # Rows written before the sequence existed, in an order unlike their timestamps.
    rows = [
        (f"00000000-0000-7000-8000-00000000000{i}", t0 + timedelta(minutes=m))
        for i, m in enumerate((5, 1, 3, 2, 4))
    ]
    insert = sa.text(
        f"INSERT INTO event_log (id, event_type, source, {timestamp}) "
        "VALUES (:id, 'task.created', 'old', :ts)"
    )
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            for event_id, stamp in rows:
                ts: object = stamp
                if sqlite:
                    ts = stamp.isoformat(timespec="microseconds")
                elif mariadb:  # DATETIME(6) holds naive UTC
                    ts = stamp.replace(tzinfo=None)
                await conn.execute(insert, {"id": event_id, "ts": ts})
        async with engine.begin() as conn:  # the revisions that number rows
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0003"))
        async with engine.connect() as conn:
            in_seq_order = await conn.scalars(sa.text("SELECT id FROM event_log ORDER BY seq"))
            by_seq = list(in_seq_order)
            last = await conn.scalar(sa.text("SELECT last_seq FROM event_log_sequence"))
        by_time = [event_id for event_id, _ in sorted(rows, key=lambda r: r[1])]
        assert by_seq == by_time
        assert last == 5
        await event_log.upgrade(engine)
        async with EventLogger(engine) as log:
            follower = log.follow(cursor=by_time[2])
            assert [e.id for e in await take(follower, 2)] == by_time[3:]
            reader = asyncio.ensure_future(take(follower, 1))  # started: it yielded two
            new = await log.log_event("task.started", "new")
            assert await reader == [new]
        async with engine.connect() as conn:
            seq_of_new = sa.text("SELECT seq FROM event_log WHERE id = :id")
            # PostgreSQL numbers no new rows (transaction ids order them instead).
            assert await conn.scalar(seq_of_new, {"id": new.id}) == (None if postgres else 6)
    finally:
        await engine.dispose()


async def test_postgres_followers_wake_on_notify_not_polling(postgres_only_url: str) -> None:
    # Polling every 30 s cannot explain an arrival within the 5 s waits: only NOTIFY can
    # (the benchmark measures how fast: reads.postgres.follow).
    async with (
        EventLogger.open(postgres_only_url, poll_interval=30) as reader_log,
        EventLogger.open(postgres_only_url) as writer_log,
    ):
        follower = reader_log.follow()
        await writer_log.log_event("system.info", "warm-up")
        first = asyncio.ensure_future(follower.__anext__())
        await started(follower)
        await writer_log.log_event("system.info", "first")
        await asyncio.wait_for(first, 5)
        for i in range(5):
            waiting = asyncio.ensure_future(follower.__anext__())
            await asyncio.sleep(0.01)
            written = await writer_log.log_event("tool.called", "other", data={"i": i})
            assert await asyncio.wait_for(waiting, 5) == written
        # Another process, too.
        waiting = asyncio.ensure_future(follower.__anext__())
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, postgres_only_url, "proc", "1"
        )
        assert await child.wait() == 0
        got = await asyncio.wait_for(waiting, 5)
        assert got.source == "proc"
