"""The original module and event-log writing to one SQLite file while a system migrates.

The original (``bench.original``, its write path re-created) writes rows without
``seq``; revision 0003's trigger numbers them in its transaction, so
``follow()`` yields them exactly once in commit order among event-log's own.
Their values stay as written and read back as the original meant them. Its
DDL (``CREATE INDEX IF NOT EXISTS idx_event_log_*``) finds the names taken by
0003's empty table and adds nothing, so ``db check`` keeps passing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bench.original import DDL, TIMESTAMP_INDEX_NAMES, Written, ddl, log_event
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

import event_log
from cli_helpers import cli, fails, ok
from event_log import Event, EventLogger, admin
from event_log._adopt import normalize_timestamp
from event_log._schema import indexes_on
from event_log.backends.sqlite import BACKEND
from follow_helpers import started
from follow_helpers import take as take_within

pytestmark = pytest.mark.sqlite

MODEL_INDEXES = {str(index.name) for index in indexes_on(sqlite_dialect())}
ORIGINAL_INDEX_NAMES = {
    "idx_event_log_task",
    "idx_event_log_agent",
    "idx_event_log_type",
    *TIMESTAMP_INDEX_NAMES,
}
NAMES_TABLE = "event_log_original_index_names"
TRIGGER = "event_log_number_rows_without_seq"
# The repository root, from which ``python -m bench.original`` runs the writer process.
ROOT = Path(__file__).resolve().parent.parent
# Generous: only a hang should reach it.
DEADLINE_S = 60


@dataclass(frozen=True)
class Database:
    path: Path
    url: str
    # What the original wrote before event-log adopted its table.
    original: list[Written]


def sqlite_query(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, args).fetchall()


def indexes_of(path: Path) -> dict[str, str]:
    """Index name -> its table, without SQLite's automatic ones."""
    rows = sqlite_query(
        path,
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
        "AND name NOT LIKE 'sqlite_autoindex_%'",
    )
    return dict(rows)


def seq_of(path: Path, ids: list[str]) -> list[int | None]:
    by_id = dict(sqlite_query(path, "SELECT id, seq FROM event_log"))
    return [by_id[i] for i in ids]


def stored_text(path: Path, event_id: str) -> tuple[str, str | None]:
    rows = sqlite_query(path, 'SELECT "timestamp", data FROM event_log WHERE id = ?', event_id)
    assert rows, event_id
    return rows[0][0], rows[0][1]


def instant(written: Written) -> datetime:
    """The instant the original meant (naive text is UTC), as event-log reads it."""
    return normalize_timestamp(written.timestamp)


def original_database(tmp_path: Path, *, statements: tuple[str, ...] = DDL) -> Database:
    """A file the original module created, with rows in both of its timestamp styles
    (one with no fraction, which isoformat() then leaves out) and its kinds of data."""
    path = tmp_path / "events.db"
    whole_second = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [
        log_event(
            path,
            "task.created",
            "coordinator",
            task_id="t1",
            data={"reward": 5},
            statements=statements,
        ),
        log_event(
            path,
            "task.assigned",
            "coordinator",
            task_id="t1",
            agent_id="a1",
            naive=True,
            statements=statements,
        ),
        log_event(
            path,
            "agent.joined",
            "a1",
            agent_id="a1",
            naive=True,
            now=lambda: whole_second,
            statements=statements,
        ),
        log_event(path, "tool.called", "a1", data={"args": [1, "ü"]}, statements=statements),
    ]
    assert rows[2].timestamp == "2026-03-01T12:00:00"
    return Database(path, f"sqlite+aiosqlite:///{path}", rows)


@pytest.fixture
async def adopted(tmp_path: Path) -> Database:
    """The original's database after ``event_log.upgrade()``."""
    db = original_database(tmp_path)
    await event_log.upgrade(db.url)
    return db


def assert_reads_as_written(event: Event, written: Written) -> None:
    assert event.id == written.id
    assert event.timestamp == instant(written)
    assert event.data == (None if written.data is None else json.loads(written.data))


# -- the original's DDL and the schema --------------------------------------------------------


@pytest.mark.parametrize("timestamp_index", TIMESTAMP_INDEX_NAMES)
async def test_the_originals_ddl_adds_no_index_and_db_check_passes(
    tmp_path: Path, timestamp_index: str
) -> None:
    db = original_database(tmp_path, statements=ddl(timestamp_index))
    assert timestamp_index in indexes_of(db.path)
    await event_log.upgrade(db.url)
    # The original keeps running its DDL: every name is taken, so it adds nothing.
    log_event(db.path, "task.started", "a1", statements=ddl(timestamp_index))
    indexes = indexes_of(db.path)
    assert {name for name, table in indexes.items() if table == "event_log"} == MODEL_INDEXES
    assert {name for name, table in indexes.items() if table == NAMES_TABLE} == (
        ORIGINAL_INDEX_NAMES
    )
    assert sqlite_query(db.path, f"SELECT count(*) FROM {NAMES_TABLE}") == [(0,)]
    await admin.check(db.url)
    result = await asyncio.to_thread(cli, db.url, "db", "check")
    assert "matches event-log's model" in ok(result).stdout


async def test_without_the_names_taken_the_originals_indexes_would_be_drift(
    adopted: Database,
) -> None:
    """What 0003's names table prevents: on the adopted table the original's names
    are free, its DDL adds four indexes duplicating event-log's, and db check fails."""
    with closing(sqlite3.connect(adopted.path)) as conn:
        conn.execute(f"DROP TABLE {NAMES_TABLE}")
    log_event(adopted.path, "task.started", "a1")
    added = {name for name, table in indexes_of(adopted.path).items() if table == "event_log"}
    assert added - MODEL_INDEXES == {
        "idx_event_log_task",
        "idx_event_log_agent",
        "idx_event_log_type",
        "idx_event_log_timestamp",
    }
    result = await asyncio.to_thread(cli, adopted.url, "db", "check")
    fails(result, 1, "differs from event-log's model", "idx_event_log_task")


async def test_upgrade_keeps_every_original_row_and_numbers_it(adopted: Database) -> None:
    ids = [row.id for row in adopted.original]
    assert sorted(seq_of(adopted.path, ids)) == [1, 2, 3, 4]  # type: ignore[type-var]
    async with EventLogger.open(adopted.url) as log:
        for row in adopted.original:
            event = await log.get_event(row.id)
            assert event is not None
            assert_reads_as_written(event, row)


# -- follow() sees the original's writes ------------------------------------------------------


async def test_follow_yields_the_originals_writes_from_a_thread_in_commit_order(
    adopted: Database,
) -> None:
    """Interleaved one at a time, so the commit order is known: the follower yields
    exactly that, and the original's rows read back as it meant them."""
    async with EventLogger.open(adopted.url) as log:
        follower = log.follow()
        reader = asyncio.ensure_future(take(follower, 20))
        await started(follower)
        expected: list[str] = []
        legacy: dict[str, Written] = {}
        for i in range(10):
            row = await asyncio.to_thread(
                log_event,
                adopted.path,
                "tool.called",
                "a1",
                task_id="t2",
                data={"i": i} if i % 3 else None,
                naive=i % 2 == 0,
            )
            legacy[row.id] = row
            own = await log.log_event("tool.completed", "a1", task_id="t2", data={"i": i})
            expected += [row.id, own.id]
        got = await reader
        assert [e.id for e in got] == expected
        for event in got:
            if event.id in legacy:
                assert_reads_as_written(event, legacy[event.id])
                assert stored_text(adopted.path, event.id) == (
                    legacy[event.id].timestamp,
                    legacy[event.id].data,
                )
        # Nothing more is pending: the next event is the next one written.
        reader = asyncio.ensure_future(take(follower, 1))
        last = await log.log_event("task.completed", "a1", task_id="t2")
        assert await reader == [last]

        timeline = await log.get_task_events("t2")
        assert [e.id for e in timeline] == [
            e.id for e in sorted([*got, last], key=lambda e: (e.timestamp, e.id))
        ]


async def test_follow_yields_the_originals_writes_from_another_process(
    adopted: Database,
) -> None:
    """A writer process answers each request once its event committed, so the commit
    order of its events and the logger's is known."""
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.original",
        str(adopted.path),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    stdin, stdout = writer.stdin, writer.stdout

    async def write(line: str) -> str:
        stdin.write(f"{line}\n".encode())
        await stdin.drain()
        answer = (await asyncio.wait_for(stdout.readline(), DEADLINE_S)).split()
        assert answer, "the writer process ended"
        return answer[0].decode()

    try:
        async with EventLogger.open(adopted.url) as log:
            follower = log.follow()
            reader = asyncio.ensure_future(take(follower, 12))
            await started(follower)
            expected: list[str] = []
            for i in range(6):
                expected.append(await write("bid.submitted child" + (" naive" if i % 2 else "")))
                expected.append((await log.log_event("bid.submitted", "parent")).id)
            got = await reader
            assert [e.id for e in got] == expected
            assert [e.source for e in got] == ["child", "parent"] * 6
            assert [e.data for e in got[::2]] == [{"pid": "child"}] * 6
    finally:
        stdin.close()
        assert await asyncio.wait_for(writer.wait(), DEADLINE_S) == 0


async def test_original_writers_on_many_threads_while_following_exactly_once(
    adopted: Database,
) -> None:
    """Eight threads write the original way (a connection per call) while the logger
    writes its own: the follower yields every event once, in seq order, and each
    writer's events in the order it committed them."""
    threads, per_thread, own_count = 8, 20, 60
    total = threads * per_thread + own_count
    by_writer: dict[str, list[str]] = {}
    failures: list[BaseException] = []

    def original(name: str) -> None:
        try:
            by_writer[name] = [
                log_event(adopted.path, "tool.called", name, data={"n": n}, naive=n % 2 == 0).id
                for n in range(per_thread)
            ]
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    async with EventLogger.open(adopted.url) as log:
        follower = log.follow()
        reader = asyncio.ensure_future(take(follower, total))
        await started(follower)
        workers = [
            threading.Thread(target=original, args=(f"original-{i}",)) for i in range(threads)
        ]
        for worker in workers:
            worker.start()
        own = []
        for n in range(own_count):
            own.append((await log.log_event("tool.completed", "event-log", data={"n": n})).id)
            await asyncio.sleep(0)
        for worker in workers:
            await asyncio.to_thread(worker.join, DEADLINE_S)
        assert not failures, failures
        got = [e.id for e in await reader]

    assert len(got) == len(set(got)) == total
    assert set(got) == set(own).union(*by_writer.values())
    seqs = seq_of(adopted.path, got)
    assert seqs == sorted(seqs)  # type: ignore[type-var]
    assert [i for i in got if i in set(own)] == own
    for ids in by_writer.values():
        assert [i for i in got if i in set(ids)] == ids
    last_seq = sqlite_query(adopted.path, "SELECT last_seq FROM event_log_sequence")
    assert last_seq == [(len(adopted.original) + total,)]


# -- what the trigger stores ------------------------------------------------------------------


async def test_list_events_orders_the_originals_rows_by_time(adopted: Database) -> None:
    """The original's text (naive or +00:00, no fraction at a whole second) stays as it
    wrote it, reads as the instant it meant and sorts among event-log's own by time."""
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    us = timedelta(microseconds=1)

    def original(at: datetime, *, naive: bool) -> Written:
        return log_event(
            adopted.path, "task.created", "o", task_id="t3", naive=naive, now=lambda: at
        )

    async with EventLogger.open(adopted.url) as log:

        async def own(at: datetime) -> str:
            return (await log.log_event("task.created", "n", task_id="t3", timestamp=at)).id

        # Newest first, so neither id order nor commit order is time order.
        ids = [
            await own(t0 + 3 * us),
            original(t0 + 2 * us, naive=True).id,
            await own(t0 + us),
            original(t0, naive=True).id,  # "2026-03-02T12:00:00"
            await own(t0 - us),
            original(t0 - 2 * us, naive=False).id,
            await own(t0 - timedelta(seconds=1) + us),
            original(t0 - timedelta(seconds=1), naive=False).id,  # "...11:59:59+00:00"
        ][::-1]
        texts = dict(sqlite_query(adopted.path, 'SELECT id, "timestamp" FROM event_log'))
        assert texts[ids[0]] == "2026-03-02T11:59:59+00:00"
        assert texts[ids[4]] == "2026-03-02T12:00:00"
        page = await log.list_events(task_id="t3", newest_first=False)
        assert [e.id for e in page.events] == ids
        since = await log.list_events(task_id="t3", since=t0 - us, newest_first=False)
        assert [e.id for e in since.events] == ids[3:]
        until = await log.list_events(task_id="t3", until=t0 + us, newest_first=False)
        assert [e.id for e in until.events] == ids[:5]
        first = await log.list_events(task_id="t3", limit=3, newest_first=False)
        rest = await log.list_events(task_id="t3", cursor=first.next_cursor, newest_first=False)
        assert [e.id for e in [*first.events, *rest.events]] == ids


def _opcodes_that_may_abort(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The opcodes of ``sql`` (trigger programs included) after which SQLite keeps a
    statement journal: a call of an SQL function, or a halt whose action is ABORT."""
    with closing(sqlite3.connect(path)) as conn:
        program = conn.execute(f"EXPLAIN {sql}", (None,) * sql.count("?")).fetchall()
    assert any(op[1] == "Program" for op in program)  # the trigger is compiled in
    abort = 2  # OE_Abort
    return [
        op
        for op in program
        if op[1] in ("Function", "PureFunc")
        or (op[1] in ("Halt", "HaltIfNull") and op[2] != 0 and op[3] == abort)
    ]


async def test_event_logs_insert_keeps_no_statement_journal_beside_the_trigger(
    adopted: Database,
) -> None:
    """SQLite compiles the trigger into event-log's INSERT too. Were anything in it able
    to abort the statement alone, every row inserted in a transaction would get a
    statement journal, which halved batch writes: so INSERT OR ROLLBACK, and a trigger
    without functions. (The check finds what a plain INSERT would abort on.)"""
    sql = BACKEND.insert_sql(sqlite_dialect())
    assert _opcodes_that_may_abort(adopted.path, sql) == []
    plain = sql.replace("INSERT OR ROLLBACK", "INSERT")
    assert {op[5] for op in _opcodes_that_may_abort(adopted.path, plain)} >= {
        "event_log.id",
        "event_log.seq",
    }


async def test_event_logs_own_writes_leave_the_trigger_idle(adopted: Database) -> None:
    """Its rows always carry seq: numbers stay contiguous and the counter agrees, which a
    trigger bumping the counter as well would break."""
    async with EventLogger.open(adopted.url) as log:
        batch = await log.log_events(
            [{"event_type": "task.created", "source": "n", "data": {"i": i}} for i in range(50)]
        )
        single = [await log.log_event("task.started", "n") for _ in range(5)]
    first = len(adopted.original) + 1
    ids = [e.id for e in [*batch, *single]]
    assert seq_of(adopted.path, ids) == list(range(first, first + len(ids)))
    assert sqlite_query(adopted.path, "SELECT last_seq FROM event_log_sequence") == [
        (first + len(ids) - 1,)
    ]


# -- downgrade and upgrade again --------------------------------------------------------------


async def test_downgrade_to_0002_and_upgrade_numbers_what_was_written_meanwhile(
    adopted: Database,
) -> None:
    change = await admin.downgrade(adopted.url, "0002")
    assert (change.before, change.after) == ("0004", "0002")
    assert (
        sqlite_query(
            adopted.path,
            "SELECT name FROM sqlite_master WHERE name IN (?, ?)",
            TRIGGER,
            NAMES_TABLE,
        )
        == []
    )

    # At 0002 the original's rows get no seq and its DDL adds its indexes again.
    t0 = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
    meanwhile = [
        log_event(adopted.path, "task.created", "o", naive=True, now=lambda: t0),
        log_event(adopted.path, "task.created", "o", now=lambda: t0 - timedelta(seconds=1)),
        log_event(
            adopted.path,
            "task.created",
            "o",
            data=None,
            naive=True,
            now=lambda: t0 + timedelta(microseconds=5),
        ),
    ]
    ids = [row.id for row in meanwhile]
    assert seq_of(adopted.path, ids) == [None, None, None]
    assert {"idx_event_log_task", "idx_event_log_timestamp"} <= set(indexes_of(adopted.path))

    await event_log.upgrade(adopted.url)
    assert await admin.current_revision(adopted.url) == admin.head_revision() == "0004"
    last = len(adopted.original)
    # Numbered after the counter in (timestamp, id) order: the second, first, third.
    assert seq_of(adopted.path, ids) == [last + 2, last + 1, last + 3]
    assert sqlite_query(adopted.path, "SELECT last_seq FROM event_log_sequence") == [(last + 3,)]
    for row in meanwhile:
        assert stored_text(adopted.path, row.id)[0] == row.timestamp
    assert {n for n, t in indexes_of(adopted.path).items() if t == "event_log"} == MODEL_INDEXES
    await admin.check(adopted.url)

    # And the original writes on as before, numbered at once.
    after = log_event(adopted.path, "task.started", "o")
    assert seq_of(adopted.path, [after.id]) == [last + 4]


async def take(follower: AsyncIterator[Event], n: int) -> list[Event]:
    """The next ``n`` events, failing after DEADLINE_S."""
    return await take_within(follower, n, DEADLINE_S)
