"""Every public listing is an index search in index order on SQLite: no full scan, no sort.

The plans are those of the statements the logger really issues: a cursor hook
runs ``EXPLAIN QUERY PLAN`` on each statement just before it executes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from event_log import EventLogger

pytestmark = pytest.mark.sqlite

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def planned(tmp_path: Path) -> AsyncIterator[tuple[EventLogger, list[str]]]:
    plans: list[str] = []
    async with EventLogger.open(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}") as log:
        await log.log_events(
            [
                {
                    "event_type": ("task.created", "tool.called", "bid.submitted")[i % 3],
                    "source": f"s{i % 7}",
                    "task_id": f"t{i % 50}",
                    "agent_id": f"a{i % 20}",
                    "timestamp": T0 + timedelta(seconds=i),
                }
                for i in range(2000)
            ]
        )

        def explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith(("SELECT", "DELETE", "WITH")):
                cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
                rows = cursor.fetchall()
                plans.append("\n".join(str(row[-1]) for row in rows))

        event.listen(log.engine.sync_engine, "before_cursor_execute", explain)
        yield log, plans


async def plan_of(
    planned: tuple[EventLogger, list[str]], call: Callable[[EventLogger], Awaitable[object]]
) -> str:
    log, plans = planned
    plans.clear()
    await call(log)
    assert plans, "the call issued no statement"
    return "\n".join(plans)


def assert_indexed(plan: str, *, search: bool = True) -> None:
    for line in plan.splitlines():
        if line.startswith("SCAN event_log") and "INDEX" not in line:
            pytest.fail(f"full table scan:\n{plan}")
    assert "TEMP B-TREE FOR ORDER BY" not in plan, f"sort step:\n{plan}"
    assert "TEMP B-TREE FOR RIGHT PART OF ORDER BY" not in plan, f"sort step:\n{plan}"
    if search:
        assert "SEARCH event_log USING" in plan, f"no index search:\n{plan}"


async def cursor_for(log: EventLogger, newest_first: bool) -> str | None:
    page = await log.list_events(limit=10, newest_first=newest_first)
    return page.next_cursor


LISTINGS: dict[str, tuple[Callable[[EventLogger], Awaitable[object]], bool]] = {
    "task timeline": (lambda log: log.get_task_events("t7"), True),
    "agent newest": (lambda log: log.get_agent_events("a3"), True),
    "recent events": (lambda log: log.get_recent_events(60), True),
    "summary window": (lambda log: log.get_event_summary(60), True),
    "list newest first": (lambda log: log.list_events(), False),
    "list oldest first": (lambda log: log.list_events(newest_first=False), False),
    "list by type": (lambda log: log.list_events(event_type="tool.called"), True),
    "list by type prefix": (lambda log: log.list_events(event_type="task.*"), False),
    "count by type prefix": (lambda log: log.count_events(event_type="task.*"), True),
    "list by types": (
        lambda log: log.list_events(event_type=["task.created", "bid.submitted"]),
        False,
    ),
    "list by task": (lambda log: log.list_events(task_id="t1"), True),
    "list by agent": (lambda log: log.list_events(agent_id="a1", newest_first=False), True),
    "list time window": (
        lambda log: log.list_events(since=T0, until=T0 + timedelta(minutes=5)),
        True,
    ),
    "count by type": (lambda log: log.count_events(event_type="bid.submitted"), True),
    "count by task": (lambda log: log.count_events(task_id="t3"), True),
    "count since": (lambda log: log.count_events(since=T0 + timedelta(minutes=20)), True),
    "list by data": (lambda log: log.list_events(data_contains={"k": {"x": [1]}}), False),
    "list by data key": (lambda log: log.list_events(data_where=[("k", ">", 1)]), False),
    "list by task and data": (
        lambda log: log.list_events(task_id="t1", data_where=[("k", "=", "v")]),
        True,
    ),
    "get event": (lambda log: log.get_event("0190a000-0000-7000-8000-000000000000"), True),
}


async def test_prune_batch_is_an_index_search(planned: tuple[EventLogger, list[str]]) -> None:
    # Prune batches go through the writer's own connection, so explain the statement itself.
    from sqlalchemy.dialects import sqlite

    from event_log.backends import backend_named

    log, _ = planned
    statement = backend_named("sqlite").prune_batch_statement(T0 + timedelta(minutes=10), 1000)
    sql = str(statement.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    async with log.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)).all()
    plan = "\n".join(str(row[-1]) for row in rows)
    assert_indexed(plan)
    assert "ix_event_log_timestamp_id (timestamp<?)" in plan


@pytest.mark.parametrize("name", list(LISTINGS))
async def test_listing_uses_an_index_without_sorting(
    planned: tuple[EventLogger, list[str]], name: str
) -> None:
    call, search = LISTINGS[name]
    assert_indexed(await plan_of(planned, call), search=search)


@pytest.mark.parametrize("newest_first", [True, False])
async def test_keyset_page_at_depth_is_an_index_search(
    planned: tuple[EventLogger, list[str]], newest_first: bool
) -> None:
    log, _ = planned
    cursor = await cursor_for(log, newest_first)
    plan = await plan_of(
        planned, lambda log: log.list_events(limit=10, cursor=cursor, newest_first=newest_first)
    )
    assert_indexed(plan)


async def test_the_check_catches_a_full_scan(planned: tuple[EventLogger, list[str]]) -> None:
    # Filtering on data alone cannot use an index: the assertion must notice.
    with pytest.raises(pytest.fail.Exception):
        assert_indexed("SCAN event_log")
    with pytest.raises(AssertionError):
        assert_indexed("SEARCH event_log USING INDEX x (a=?)\nUSE TEMP B-TREE FOR ORDER BY")


HISTOGRAMS: dict[str, tuple[Callable[[EventLogger], Awaitable[object]], str]] = {
    "plain": (
        lambda log: log.get_event_histogram(
            since=T0, until=T0 + timedelta(minutes=30), every=timedelta(minutes=5)
        ),
        "SEARCH event_log USING COVERING INDEX ix_event_log_timestamp_id",
    ),
    "one type": (
        lambda log: log.get_event_histogram(
            since=T0,
            until=T0 + timedelta(minutes=30),
            every=timedelta(minutes=5),
            event_type="tool.called",
        ),
        "SEARCH event_log USING COVERING INDEX ix_event_log_event_type_timestamp_id",
    ),
    "type prefix by source": (
        lambda log: log.get_event_histogram(
            since=T0 + timedelta(seconds=7),
            until=T0 + timedelta(minutes=30),
            every=timedelta(minutes=5),
            event_type="task.*",
            by="source",
        ),
        "SEARCH event_log USING INDEX ix_event_log_timestamp_id",
    ),
    "by type": (
        lambda log: log.get_event_histogram(
            since=T0,
            until=T0 + timedelta(minutes=30),
            every=timedelta(minutes=5),
            by="event_type",
        ),
        "ix_event_log_event_type_timestamp_id (event_type=? AND timestamp>? AND timestamp<?)",
    ),
    "by agent": (
        lambda log: log.get_event_histogram(
            since=T0,
            until=T0 + timedelta(minutes=30),
            every=timedelta(minutes=5),
            by="agent_id",
        ),
        "ix_event_log_agent_id_timestamp_id (agent_id=? AND timestamp>? AND timestamp<?)",
    ),
}


@pytest.mark.parametrize("name", list(HISTOGRAMS))
async def test_histogram_counts_index_ranges_per_bucket(
    planned: tuple[EventLogger, list[str]], name: str
) -> None:
    # One range of the index per bucket: no row's bucket is computed, nothing is scanned.
    call, search = HISTOGRAMS[name]
    plan = await plan_of(planned, call)
    assert_indexed(plan)
    assert search in plan, plan
