"""The public contract, run unchanged on every backend: in-memory and file SQLite, PostgreSQL
(plain and partitioned) and MariaDB."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from event_log import (
    Event,
    EventLogger,
    EventType,
    InvalidCursorError,
    InvalidEventError,
    LoggerClosedError,
    NewEvent,
    Page,
)
from event_log._follow import Follower

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and str(parsed) == value


async def all_pages(log: EventLogger, *, limit: int, newest_first: bool, **filters) -> list[Event]:
    seen: list[Event] = []
    cursor = None
    while True:
        page = await log.list_events(
            limit=limit, cursor=cursor, newest_first=newest_first, **filters
        )
        seen.extend(page.events)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


# -- writing --------------------------------------------------------------------------------


async def test_log_event_returns_the_stored_event(log: EventLogger) -> None:
    event = await log.log_event(
        EventType.TASK_ASSIGNED,
        "coordinator",
        task_id="t-1",
        agent_id="a-1",
        data={"bid_sats": 420, "note": "lowest bid"},
    )
    assert is_uuid7(event.id)
    assert event.event_type == EventType.TASK_ASSIGNED
    assert type(event.event_type) is str
    assert event.timestamp.tzinfo is not None
    assert event.timestamp.utcoffset() == timedelta(0)
    assert await log.get_event(event.id) == event


async def test_events_are_immutable(log: EventLogger) -> None:
    event = await log.log_event("task.created", "coordinator")
    with pytest.raises(ValueError, match="frozen"):
        event.source = "someone else"  # type: ignore[misc]


async def test_custom_dotted_event_type_is_accepted(log: EventLogger) -> None:
    event = await log.log_event("payment.settled", "billing")
    assert (await log.get_event(event.id)) == event


async def test_timestamp_is_stored_in_utc_with_microseconds(log: EventLogger) -> None:
    local = datetime(2026, 3, 1, 14, 0, 0, 654321, tzinfo=timezone(timedelta(hours=2)))
    event = await log.log_event("task.created", "c", timestamp=local)
    stored = await log.get_event(event.id)
    assert stored is not None
    assert stored.timestamp == datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
    assert stored.timestamp.utcoffset() == timedelta(0)


async def test_data_is_converted_the_way_pydantic_json_mode_does(log: EventLogger) -> None:
    class Colour(enum.Enum):
        RED = "red"

    ident = uuid.uuid4()
    event = await log.log_event(
        "tool.completed",
        "agent",
        data={
            "when": T0,
            "id": ident,
            "colour": Colour.RED,
            "pair": (1, 2),
            "nested": {"deep": [{"x": None, "y": 1.5, "z": True}]},
            "amount": Decimal("1.25"),
            "text": "caf\u00e9 \u2603",
        },
    )
    expected = {
        "when": "2026-03-01T12:00:00.123456Z",
        "id": str(ident),
        "colour": "red",
        "pair": [1, 2],
        "nested": {"deep": [{"x": None, "y": 1.5, "z": True}]},
        "amount": "1.25",
        "text": "caf\u00e9 \u2603",
    }
    assert event.data == expected
    stored = await log.get_event(event.id)
    assert stored is not None
    assert stored.data == expected


async def test_event_json_wire_form(log: EventLogger) -> None:
    event = await log.log_event("task.created", "c", task_id="t", data={"k": 1}, timestamp=T0)
    wire = event.model_dump(mode="json")
    assert wire["id"] == event.id
    assert wire["data"] == {"k": 1}
    assert Event.model_validate(wire) == event


async def test_ids_logged_one_after_another_strictly_increase(log: EventLogger) -> None:
    ids = [(await log.log_event("system.info", "c", timestamp=T0)).id for _ in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


BAD_EVENTS = [
    pytest.param({"event_type": "Task.created"}, id="uppercase-type"),
    pytest.param({"event_type": "task"}, id="one-segment"),
    pytest.param({"event_type": "task."}, id="empty-segment"),
    pytest.param({"event_type": "task..created"}, id="double-dot"),
    pytest.param({"event_type": "1task.created"}, id="leading-digit"),
    pytest.param({"event_type": "a." + "b" * 63}, id="type-too-long"),
    pytest.param({"event_type": ""}, id="empty-type"),
    pytest.param({"event_type": 7}, id="type-not-str"),
    pytest.param({"source": ""}, id="empty-source"),
    pytest.param({"source": "s" * 256}, id="source-too-long"),
    pytest.param({"source": None}, id="source-none"),
    pytest.param({"source": "nul\x00"}, id="source-nul"),
    pytest.param({"task_id": "t" * 256}, id="task-id-too-long"),
    pytest.param({"agent_id": "a" * 256}, id="agent-id-too-long"),
    pytest.param({"agent_id": 5}, id="agent-id-not-str"),
    pytest.param({"data": {1: "x"}}, id="int-key"),
    pytest.param({"data": {"a": [{"b": {2: 3}}]}}, id="deep-int-key"),
    pytest.param({"data": {"x": float("nan")}}, id="nan"),
    pytest.param({"data": {"x": [float("inf")]}}, id="infinity"),
    pytest.param({"data": {"x": object()}}, id="unserialisable"),
    pytest.param({"data": ["not", "a", "mapping"]}, id="data-not-mapping"),
    pytest.param({"data": {"x": "nul\x00"}}, id="data-nul"),
    pytest.param({"data": {"x": "\ud800"}}, id="data-lone-surrogate"),
    pytest.param({"data": {"x": "y" * 70_000}}, id="data-too-big"),
    pytest.param({"timestamp": datetime(2026, 3, 1)}, id="naive-timestamp"),
    pytest.param({"timestamp": "2026-03-01T00:00:00Z"}, id="timestamp-not-datetime"),
]


@pytest.mark.parametrize("override", BAD_EVENTS)
async def test_invalid_event_is_refused_and_nothing_is_written(
    log: EventLogger, override: dict[str, object]
) -> None:
    fields: dict[str, object] = {"event_type": "task.created", "source": "coordinator"}
    fields.update(override)
    event_type, source = fields.pop("event_type"), fields.pop("source")
    with pytest.raises(InvalidEventError):
        await log.log_event(event_type, source, **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError):
        log.emit(event_type, source, **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidEventError):
        await log.log_events([{"event_type": "task.created", "source": "ok"}, dict(override)])
    await log.flush()
    assert await log.count_events() == 0


async def test_invalid_event_error_is_a_value_error() -> None:
    assert issubclass(InvalidEventError, ValueError)
    assert issubclass(InvalidCursorError, ValueError)


async def test_data_size_limit_is_configurable(backend_url: str) -> None:
    async with EventLogger.open(backend_url, max_data_bytes=20) as log:
        exactly = {"k": "x" * 12}  # {"k":"xxxxxxxxxxxx"} is 20 bytes
        await log.log_event("system.info", "c", data=exactly)
        with pytest.raises(InvalidEventError, match="at most 20"):
            await log.log_event("system.info", "c", data={"k": "x" * 13})
        assert await log.count_events() == 1


async def test_log_events_commits_all_and_accepts_mappings_and_models(log: EventLogger) -> None:
    events = await log.log_events(
        [
            NewEvent(event_type="task.created", source="c", task_id="t"),
            {"event_type": EventType.TASK_BIDDING, "source": "c", "task_id": "t"},
            {"event_type": "task.started", "source": "c", "task_id": "t", "timestamp": T0},
        ]
    )
    assert [e.event_type for e in events] == ["task.created", "task.bidding", "task.started"]
    assert events[2].timestamp == T0
    assert await log.count_events(task_id="t") == 3
    assert await log.log_events([]) == []


async def test_log_events_refuses_unknown_fields(log: EventLogger) -> None:
    with pytest.raises(InvalidEventError):
        await log.log_events([{"event_type": "task.created", "source": "c", "colour": "red"}])
    with pytest.raises(InvalidEventError):
        await log.log_events(["task.created"])  # type: ignore[list-item]
    assert await log.count_events() == 0


async def test_one_invalid_caller_never_fails_another(log: EventLogger) -> None:
    async def good(i: int) -> Event:
        return await log.log_event("task.created", "c", task_id=f"t{i}")

    async def bad() -> Event:
        return await log.log_event("BAD", "c")

    results = await asyncio.gather(*(good(i) for i in range(20)), bad(), return_exceptions=True)
    assert sum(isinstance(r, InvalidEventError) for r in results) == 1
    assert sum(isinstance(r, Event) for r in results) == 20
    assert await log.count_events() == 20


async def test_hundred_concurrent_writers_lose_nothing(log: EventLogger) -> None:
    async def coordinator(n: int) -> list[Event]:
        return [
            await log.log_event("tool.called", f"agent-{n}", agent_id=f"a{n}", data={"i": i})
            for i in range(10)
        ]

    batches = await asyncio.gather(*(coordinator(n) for n in range(100)))
    ids = [e.id for batch in batches for e in batch]
    assert len(set(ids)) == 1000
    assert await log.count_events() == 1000
    assert await log.count_events(agent_id="a42") == 10
    assert log.stats.written == 1000
    assert log.stats.queued == 0


async def test_emit_then_flush_commits_everything(log: EventLogger) -> None:
    emitted = [log.emit("system.info", "c", data={"i": i}) for i in range(500)]
    await log.flush()
    assert await log.count_events() == 500
    assert await log.get_event(emitted[-1].id) == emitted[-1]
    stats = log.stats
    assert (stats.written, stats.failed, stats.queued) == (500, 0, 0)


async def test_emit_from_other_threads(log: EventLogger) -> None:
    await log.flush()  # the logger now knows its loop

    def work(n: int) -> list[str]:
        return [log.emit("system.warning", f"thread-{n}").id for _ in range(200)]

    results = await asyncio.gather(*(asyncio.to_thread(work, n) for n in range(4)))
    await log.flush()
    assert await log.count_events() == 800
    assert len({i for ids in results for i in ids}) == 800


async def test_closed_logger_refuses_calls_and_close_is_idempotent(backend_url: str) -> None:
    log = await EventLogger.open(backend_url)
    await log.close()
    await log.close()
    with pytest.raises(LoggerClosedError):
        await log.log_event("task.created", "c")
    with pytest.raises(LoggerClosedError):
        log.emit("task.created", "c")
    with pytest.raises(LoggerClosedError):
        await log.list_events()
    with pytest.raises(LoggerClosedError):
        await log.prune_events()


async def test_close_flushes_pending_emits(migratable_url: str) -> None:
    async with EventLogger.open(migratable_url) as log:
        for i in range(300):
            log.emit("system.info", "c", data={"i": i})
    async with EventLogger.open(migratable_url) as log:
        assert await log.count_events() == 300


# -- reading ----------------------------------------------------------------------------------


async def seed(log: EventLogger) -> list[Event]:
    """A small, fixed story: two tasks, two agents, known timestamps."""
    minute = timedelta(minutes=1)
    specs = [
        ("agent.joined", "a1", None, 0),
        ("agent.joined", "a2", None, 1),
        ("task.created", None, "t1", 2),
        ("task.bidding", None, "t1", 3),
        ("bid.submitted", "a1", "t1", 4),
        ("bid.submitted", "a2", "t1", 5),
        ("task.assigned", "a2", "t1", 6),
        ("task.created", None, "t2", 7),
        ("tool.called", "a2", "t1", 8),
        ("task.completed", "a2", "t1", 9),
        ("task.failed", "a1", "t2", 10),
        ("system.warning", None, None, 11),
    ]
    return await log.log_events(
        [
            {
                "event_type": et,
                "source": "coordinator" if agent is None else agent,
                "agent_id": agent,
                "task_id": task,
                "timestamp": T0 + offset * minute,
                "data": {"step": offset},
            }
            for et, agent, task, offset in specs
        ]
    )


async def test_task_timeline_is_oldest_first(log: EventLogger) -> None:
    await seed(log)
    timeline = await log.get_task_events("t1")
    assert [e.event_type for e in timeline] == [
        "task.created",
        "task.bidding",
        "bid.submitted",
        "bid.submitted",
        "task.assigned",
        "tool.called",
        "task.completed",
    ]
    assert await log.get_task_events("nope") == []


async def test_task_timeline_has_no_silent_cap(log: EventLogger) -> None:
    await log.log_events(
        [{"event_type": "tool.called", "source": "a", "task_id": "big"} for _ in range(2500)]
    )
    assert len(await log.get_task_events("big")) == 2500


async def test_agent_events_are_newest_first_and_limited(log: EventLogger) -> None:
    await seed(log)
    events = await log.get_agent_events("a2")
    assert [e.data["step"] for e in events if e.data] == [9, 8, 6, 5, 1]
    assert len(await log.get_agent_events("a2", limit=2)) == 2
    with pytest.raises(ValueError, match="limit"):
        await log.get_agent_events("a2", limit=0)


async def test_recent_events_and_summary_cover_the_window(log: EventLogger) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(hours=2)
    await log.log_events(
        [{"event_type": "task.created", "source": "c", "timestamp": old}] * 3
        + [{"event_type": "task.created", "source": "c"}] * 2
        + [{"event_type": "tool.called", "source": "c"}] * 3
        + [{"event_type": "system.error", "source": "c"}]
    )
    recent = await log.get_recent_events(60)
    assert len(recent) == 6
    assert [e.timestamp for e in recent] == sorted((e.timestamp for e in recent), reverse=True)
    assert len(await log.get_recent_events(60, limit=4)) == 4
    assert len(await log.get_recent_events(180)) == 9
    summary = await log.get_event_summary(60)
    assert summary == {"tool.called": 3, "task.created": 2, "system.error": 1}
    assert list(summary) == ["tool.called", "task.created", "system.error"]
    assert (await log.get_event_summary(180))["task.created"] == 5
    with pytest.raises(ValueError, match="minutes"):
        await log.get_event_summary(-1)
    with pytest.raises(ValueError, match="minutes"):
        await log.get_recent_events(float("nan"))
    with pytest.raises(ValueError, match="minutes"):
        await log.get_event_summary("60")  # type: ignore[arg-type]


async def test_list_events_filters(log: EventLogger) -> None:
    await seed(log)

    async def types(**filters: object) -> list[str]:
        page = await log.list_events(newest_first=False, **filters)  # type: ignore[arg-type]
        return [e.event_type for e in page.events]

    assert await types(event_type="bid.submitted") == ["bid.submitted"] * 2
    assert await types(event_type=EventType.TASK_CREATED) == ["task.created"] * 2
    assert await types(event_type=["task.failed", "system.warning"]) == [
        "task.failed",
        "system.warning",
    ]
    assert await types(event_type="task.*") == [
        "task.created",
        "task.bidding",
        "task.assigned",
        "task.created",
        "task.completed",
        "task.failed",
    ]
    assert await types(event_type=["agent.*", "system.warning"]) == [
        "agent.joined",
        "agent.joined",
        "system.warning",
    ]
    assert await types(event_type=[]) == []
    assert await types(source="a1") == ["agent.joined", "bid.submitted", "task.failed"]
    assert await types(task_id="t2") == ["task.created", "task.failed"]
    assert await types(agent_id="a1", task_id="t1") == ["bid.submitted"]
    since, until = T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)
    assert await types(since=since, until=until) == ["task.created", "task.bidding"]
    assert await log.count_events(event_type="task.*", task_id="t1") == 4
    assert await log.count_events(since=since, until=until) == 2
    assert await log.count_events() == 12


async def test_prefix_filter_treats_underscore_literally(log: EventLogger) -> None:
    await log.log_event("agent.status_changed", "c")
    await log.log_event("agentx.status", "c")
    await log.log_event("agent_x.status", "c")
    assert await log.count_events(event_type="agent.*") == 1
    assert await log.count_events(event_type="agent_x.*") == 1


# Text that a case-insensitive, accent-insensitive or pad-space collation would
# confuse (MariaDB's default utf8mb4_general_ci would match all of them).
LOOKALIKES = ["agent", "Agent", "AGENT", "agent ", "agént", "age\u0301nt", "agent\t"]


async def test_text_filters_match_exactly(log: EventLogger) -> None:
    for name in LOOKALIKES:
        await log.log_event("task.created", name, task_id=name, agent_id=name)
    for name in LOOKALIKES:
        assert [e.source for e in (await log.list_events(source=name)).events] == [name]
        assert [e.task_id for e in await log.get_task_events(name)] == [name]
        assert [e.agent_id for e in await log.get_agent_events(name)] == [name]
        assert await log.count_events(exclude_source=name) == len(LOOKALIKES) - 1


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        ({"since": datetime(2026, 1, 1)}, ValueError),
        ({"until": datetime(2026, 1, 1)}, ValueError),
        ({"limit": 0}, ValueError),
        ({"limit": 1001}, ValueError),
        ({"event_type": "Not A Type"}, ValueError),
        ({"event_type": "*"}, ValueError),
        ({"event_type": ["task.created", "bad type"]}, ValueError),
        ({"event_type": [7]}, ValueError),
        ({"limit": "10"}, ValueError),
        ({"limit": True}, ValueError),
        ({"since": "2026-01-01T00:00:00Z"}, ValueError),
        ({"source": 7}, ValueError),
        ({"task_id": "nul\x00"}, ValueError),
    ],
)
async def test_list_events_refuses_bad_arguments(
    log: EventLogger, filters: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await log.list_events(**filters)  # type: ignore[arg-type]


@pytest.mark.parametrize("newest_first", [True, False])
async def test_keyset_pages_never_skip_or_repeat_on_ties(
    log: EventLogger, newest_first: bool
) -> None:
    # Same timestamp for every event: only the id breaks the tie.
    stored = await log.log_events(
        [{"event_type": "bid.submitted", "source": "a", "timestamp": T0}] * 25
        + [{"event_type": "bid.submitted", "source": "a", "timestamp": T0 + timedelta(seconds=1)}]
        * 5
    )
    seen = await all_pages(log, limit=7, newest_first=newest_first)
    expected = sorted(stored, key=lambda e: (e.timestamp, e.id), reverse=newest_first)
    assert [e.id for e in seen] == [e.id for e in expected]


async def test_last_page_has_no_cursor(log: EventLogger) -> None:
    await seed(log)
    page = await log.list_events(limit=12)
    assert isinstance(page, Page)
    assert len(page.events) == 12
    assert page.next_cursor is None


async def test_paging_while_others_insert_sees_each_existing_event_once(log: EventLogger) -> None:
    existing = await log.log_events(
        [{"event_type": "tool.called", "source": "a", "timestamp": T0}] * 40
    )
    seen: list[Event] = []
    cursor = None
    while True:
        page = await log.list_events(limit=9, cursor=cursor)
        seen.extend(page.events)
        # Others keep logging, newer and older than the current position.
        await log.log_event("tool.called", "b")
        await log.log_event("tool.called", "b", timestamp=T0 - timedelta(days=1))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    seen_ids = [e.id for e in seen]
    assert len(seen_ids) == len(set(seen_ids))
    assert {e.id for e in existing} <= set(seen_ids)


async def test_foreign_and_tampered_cursors_are_refused(backend_url: str) -> None:
    async with EventLogger.open(backend_url) as log:
        await log.log_events([{"event_type": "task.created", "source": "c"}] * 5)
        cursor = (await log.list_events(limit=2)).next_cursor
        assert cursor is not None
        tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
        for bad in ["", "not a cursor", "!!!!", tampered, cursor + "x", "A" * 40]:
            with pytest.raises(InvalidCursorError):
                await log.list_events(limit=2, cursor=bad)
        with pytest.raises(InvalidCursorError, match="newest_first"):
            await log.list_events(limit=2, cursor=cursor, newest_first=False)
        # A second logger on the same database did not issue it.
        other = EventLogger(log.engine)
        with pytest.raises(InvalidCursorError):
            await other.list_events(limit=2, cursor=cursor)
        await other.close()


async def test_get_event_returns_none_for_unknown_or_malformed_ids(log: EventLogger) -> None:
    await seed(log)
    assert await log.get_event(str(uuid.uuid4())) is None
    assert await log.get_event("not-an-id") is None
    assert await log.get_event("") is None
    assert await log.get_event("x" * 500) is None
    assert await log.get_event("nul\x00") is None


# -- retention ---------------------------------------------------------------------------------


async def test_prune_deletes_old_events_in_batches(backend_url: str) -> None:
    async with EventLogger.open(backend_url, prune_batch_size=10) as log:
        now = datetime.now(UTC)

        def at(days: float) -> dict[str, object]:
            return {"event_type": "task.created", "source": "c", "timestamp": now - timedelta(days)}

        await log.log_events([at(40)] * 35 + [at(29)] * 4)
        fresh = await log.log_event("task.created", "c")
        assert await log.prune_events(30) == 35
        assert await log.count_events() == 5
        assert await log.prune_events(30) == 0
        assert await log.prune_events(older_than_days=0.5) == 4
        assert await log.get_event(fresh.id) == fresh
        with pytest.raises(ValueError, match="older_than_days"):
            await log.prune_events(-1)
        assert await log.prune_events(0) == 1
        assert await log.count_events() == 0


async def test_prune_runs_while_others_log(backend_url: str) -> None:
    async with EventLogger.open(backend_url, prune_batch_size=50) as log:
        old_ts = datetime.now(UTC) - timedelta(days=60)
        old = {"event_type": "task.created", "source": "c", "timestamp": old_ts}
        await log.log_events([old] * 500)

        async def keep_logging() -> int:
            for i in range(100):
                await log.log_event("tool.called", "a", data={"i": i})
            return 100

        pruned, logged = await asyncio.gather(log.prune_events(30), keep_logging())
        assert pruned == 500
        assert await log.count_events() == logged


# -- storage failures ----------------------------------------------------------------------------


async def test_storage_failure_raises_storage_error_and_is_counted(
    backend_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from event_log import StorageError
    from event_log._engine import create_engine, resolve_url

    engine = create_engine(resolve_url(backend_url))  # no schema: every write fails
    try:
        if engine.dialect.name == "postgresql":  # postgres-partitioned comes with one
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DROP TABLE IF EXISTS event_log, event_log_sequence")
        log = EventLogger(engine)
        with pytest.raises(StorageError) as info:
            await log.log_event("task.created", "c")
        assert info.value.__cause__ is not None
        with pytest.raises(StorageError):
            await log.list_events()
        with caplog.at_level(logging.ERROR, logger="event_log"):
            emitted = log.emit("task.created", "c")
            await log.flush()
        assert emitted.id in caplog.text
        assert log.stats.failed == 2
        assert log.stats.written == 0
        await log.close()
        # close() never disposes a caller's engine: it still works.
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()


async def test_failed_batch_does_not_fail_other_callers(log: EventLogger) -> None:
    from event_log import StorageError
    from event_log._models import prepare_event

    # A row that passes validation but breaks the insert: a duplicate primary key
    # (id and timestamp: on a partitioned table the key is the pair).
    first = await log.log_event("task.created", "c")
    again = prepare_event("task.created", "c", timestamp=first.timestamp, max_data_bytes=100)
    duplicate = (first.id, *again.row[1:])
    goods = [prepare_event("task.started", "c", max_data_bytes=100).row for _ in range(5)]
    # Queued without yielding to the loop, so the writer takes all six as one batch.
    futures = [log._writer.submit((duplicate,))] + [log._writer.submit((row,)) for row in goods]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(results[0], StorageError)
    assert results[0].__cause__ is not None
    assert results[1:] == [None] * 5
    assert await log.count_events() == 6
    assert (log.stats.written, log.stats.failed) == (6, 1)


# -- data filters ------------------------------------------------------------------------------

DOCS: dict[str, dict[str, object] | None] = {
    "int": {"bid_sats": 42, "model": "gpt-4"},
    "float": {"bid_sats": 42.0, "model": "gpt-3.5"},
    "big": {"bid_sats": 420, "model": "claude"},
    "true": {"bid_sats": True, "flag": True},
    "one": {"bid_sats": 1, "flag": 1},
    "text": {"bid_sats": "42", "model": "Zeta"},
    "null": {"bid_sats": None, "flag": False},
    "nested": {"o": {"p": {"q": 1, "r": [1, 2]}, "s": "x"}, "model": "ünï"},
    "arrays": {"tags": ["a", "b", {"k": [1, 2]}, [3, 4]], "n": [1.5, None, True]},
    "keys": {"a.b": 1, 'say "hi"': 2, "with space": 3, "ключ": 4, "$.x[0]": 5, "": 6},
    "empty": {},
    "none": None,
}


async def seed_docs(log: EventLogger) -> dict[str, str]:
    """One event per document of DOCS; label by event id."""
    events = await log.log_events(
        [
            {
                "event_type": "bid.submitted",
                "source": label,
                "data": data,
                "timestamp": T0 + timedelta(seconds=i),
                "task_id": f"t{i % 2}",
            }
            for i, (label, data) in enumerate(DOCS.items())
        ]
    )
    return {e.id: e.source for e in events}


async def labels(log: EventLogger, **filters: object) -> set[str]:
    page = await log.list_events(limit=1000, **filters)  # type: ignore[arg-type]
    found = {e.source for e in page.events}
    assert await log.count_events(**filters) == len(page.events)  # type: ignore[arg-type]
    return found


CONTAINS_CASES = [
    pytest.param({"bid_sats": 42}, {"int", "float"}, id="int-equals-float"),
    pytest.param({"bid_sats": 42.0}, {"int", "float"}, id="float-equals-int"),
    pytest.param({"bid_sats": True}, {"true"}, id="true-is-not-1"),
    pytest.param({"bid_sats": 1}, {"one"}, id="1-is-not-true"),
    pytest.param({"bid_sats": "42"}, {"text"}, id="string-is-not-number"),
    pytest.param({"bid_sats": None}, {"null"}, id="null-value"),
    pytest.param({"flag": False}, {"null"}, id="false"),
    pytest.param({"bid_sats": 42, "model": "gpt-4"}, {"int"}, id="two-keys"),
    pytest.param({"missing": None}, set(), id="missing-key-is-not-null"),
    pytest.param({"o": {"p": {"q": 1}}}, {"nested"}, id="nested"),
    pytest.param({"o": {"p": {}}}, {"nested"}, id="nested-empty-object"),
    pytest.param({"o": {"p": {"q": 2}}}, set(), id="nested-other-value"),
    pytest.param({"o": {"p": {"r": [2]}}}, {"nested"}, id="nested-array-subset"),
    pytest.param({"o": {"p": {"r": 1}}}, set(), id="array-is-not-its-element"),
    pytest.param({"o": {"s": {}}}, set(), id="string-is-not-object"),
    pytest.param({"tags": ["b", "a", "a"]}, {"arrays"}, id="array-any-order-duplicates"),
    pytest.param({"tags": []}, {"arrays"}, id="empty-array"),
    pytest.param({"tags": [{"k": [2]}]}, {"arrays"}, id="object-in-array"),
    pytest.param({"tags": [{}]}, {"arrays"}, id="empty-object-in-array"),
    pytest.param({"tags": [[4]]}, {"arrays"}, id="array-in-array"),
    pytest.param({"tags": [3]}, set(), id="nested-array-element-is-not-outer"),
    pytest.param({"tags": ["c"]}, set(), id="absent-element"),
    pytest.param({"n": [None, True, 1.5]}, {"arrays"}, id="scalars-in-array"),
    pytest.param({"n": [1]}, set(), id="true-in-array-is-not-1"),
    pytest.param({"tags": {}}, set(), id="array-is-not-object"),
    pytest.param({"a.b": 1}, {"keys"}, id="key-with-dot"),
    pytest.param({'say "hi"': 2}, {"keys"}, id="key-with-quotes"),
    pytest.param({"with space": 3, "ключ": 4}, {"keys"}, id="key-space-unicode"),
    pytest.param({"$.x[0]": 5, "": 6}, {"keys"}, id="key-like-a-path-and-empty"),
    pytest.param({"model": "ünï"}, {"nested"}, id="unicode-value"),
    pytest.param({}, set(DOCS) - {"none"}, id="empty-matches-all-with-data"),
]


@pytest.mark.parametrize(("contains", "expected"), CONTAINS_CASES)
async def test_data_contains(
    log: EventLogger, contains: dict[str, object], expected: set[str]
) -> None:
    await seed_docs(log)
    assert await labels(log, data_contains=contains) == expected


WHERE_CASES = [
    pytest.param([("bid_sats", "=", 42)], {"int", "float"}, id="eq-number"),
    pytest.param([("bid_sats", ">", 41.5)], {"int", "float", "big"}, id="gt-float"),
    pytest.param([("bid_sats", ">=", 42)], {"int", "float", "big"}, id="ge"),
    pytest.param([("bid_sats", "<", 42)], {"one"}, id="lt-skips-true-and-text"),
    pytest.param([("bid_sats", "<=", 1)], {"one"}, id="le"),
    pytest.param([("bid_sats", "!=", 42)], {"big", "one"}, id="ne-number-same-type-only"),
    pytest.param([("bid_sats", "=", "42")], {"text"}, id="eq-string"),
    pytest.param([("bid_sats", "=", True)], {"true"}, id="eq-true"),
    pytest.param([("flag", "!=", True)], {"null"}, id="ne-true-is-false"),
    pytest.param([("bid_sats", "=", None)], {"null"}, id="eq-null"),
    pytest.param([("bid_sats", "!=", None)], set(), id="ne-null-matches-nothing"),
    pytest.param([("model", "<", "gpt-4")], {"float", "text", "big"}, id="string-code-points"),
    pytest.param([("model", ">", "gpt-4")], {"nested"}, id="string-beyond-ascii"),
    pytest.param([("model", "!=", "gpt-4")], {"float", "big", "text", "nested"}, id="ne-string"),
    pytest.param([("missing", "!=", 1)], set(), id="missing-key-never-matches"),
    pytest.param([("o", "=", 1)], set(), id="object-is-no-number"),
    pytest.param([("a.b", "=", 1), ('say "hi"', ">", 1)], {"keys"}, id="odd-keys"),
    pytest.param([("", "=", 6)], {"keys"}, id="empty-key"),
    pytest.param([("bid_sats", ">", 10), ("bid_sats", "<", 100)], {"int", "float"}, id="range"),
]


@pytest.mark.parametrize(("where", "expected"), WHERE_CASES)
async def test_data_where(
    log: EventLogger, where: list[tuple[str, str, object]], expected: set[str]
) -> None:
    await seed_docs(log)
    assert await labels(log, data_where=where) == expected


async def test_data_filters_combine_with_each_other_and_other_filters(log: EventLogger) -> None:
    await seed_docs(log)
    both = {"data_contains": {"bid_sats": 42}, "data_where": [("model", "=", "gpt-4")]}
    assert await labels(log, **both) == {"int"}
    # "int" is event 0 (task t0), "float" event 1 (task t1).
    assert await labels(log, data_contains={"bid_sats": 42}, task_id="t1") == {"float"}
    assert await labels(log, data_contains={"bid_sats": 42}, since=T0 + timedelta(seconds=1)) == {
        "float"
    }
    assert await labels(log, data_where=[("bid_sats", ">", 0)], exclude_source="big") == {
        "int",
        "float",
        "one",
    }
    assert await labels(log, data_contains={"bid_sats": 42}, event_type="task.*") == set()


@pytest.mark.parametrize("newest_first", [True, False])
async def test_keyset_pages_with_a_data_filter(log: EventLogger, newest_first: bool) -> None:
    stored = await log.log_events(
        [
            {"event_type": "bid.submitted", "source": "a", "timestamp": T0, "data": {"i": i % 3}}
            for i in range(30)
        ]
    )
    seen = await all_pages(log, limit=4, newest_first=newest_first, data_where=[("i", "=", 1)])
    expected = sorted(
        (e for e in stored if e.data == {"i": 1}),
        key=lambda e: (e.timestamp, e.id),
        reverse=newest_first,
    )
    assert [e.id for e in seen] == [e.id for e in expected]
    assert len(seen) == 10


async def test_follow_with_a_data_filter(log: EventLogger) -> None:
    start = await log.log_event("bid.submitted", "a", data={"bid_sats": 50, "won": True})
    # From an event id: whether the next ones are replayed or live, none is missed.
    follower = log.follow(
        cursor=start.id, data_contains={"won": True}, data_where=[("bid_sats", ">", 10)]
    )
    first = asyncio.ensure_future(anext(follower))
    await log.log_event("bid.submitted", "a", data={"bid_sats": 50, "won": False})
    await log.log_event("bid.submitted", "a", data={"bid_sats": 5, "won": True})
    wanted = await log.log_event("bid.submitted", "a", data={"bid_sats": 50, "won": True})
    assert (await asyncio.wait_for(first, 5)).id == wanted.id
    assert isinstance(follower, Follower)
    await follower.aclose()


async def test_histogram_with_a_data_filter(log: EventLogger) -> None:
    await seed_docs(log)
    buckets = await log.get_event_histogram(
        since=T0,
        until=T0 + timedelta(minutes=1),
        every=timedelta(minutes=1),
        data_contains={"bid_sats": 42},
    )
    assert sum(b.total for b in buckets) == 2


BAD_DATA_FILTERS = [
    pytest.param({"data_contains": [1]}, "mapping", id="contains-not-mapping"),
    pytest.param({"data_contains": "{}"}, "mapping", id="contains-string"),
    pytest.param({"data_contains": {1: 2}}, "keys must be strings", id="contains-int-key"),
    pytest.param({"data_contains": {"x": math.nan}}, "NaN", id="contains-nan"),
    pytest.param({"data_contains": {"x": object()}}, "serialisable", id="contains-object"),
    pytest.param({"data_contains": {"x": "a\x00"}}, "NUL", id="contains-nul"),
    pytest.param({"data_contains": {"x": 2**64}}, "64 bits", id="contains-big-int"),
    pytest.param({"data_contains": {"x": list(range(200))}}, "more than", id="contains-too-many"),
    pytest.param({"data_contains": {"x": [[[[[[[[[1]]]]]]]]]}}, "nested", id="contains-deep"),
    pytest.param({"data_contains": {"x": "y" * 70_000}}, "at most 65536", id="contains-too-big"),
    pytest.param({"data_where": ("a", "=", 1)}, "triples", id="where-one-triple-flat"),
    pytest.param({"data_where": "a=1"}, "sequence", id="where-string"),
    pytest.param({"data_where": {"a": 1}}, "sequence", id="where-mapping"),
    pytest.param({"data_where": [("a", "=")]}, "triples", id="where-pair"),
    pytest.param({"data_where": [(1, "=", 1)]}, "keys must be strings", id="where-int-key"),
    pytest.param({"data_where": [("a\x00", "=", 1)]}, "NUL", id="where-nul-key"),
    pytest.param({"data_where": [("a", "==", 1)]}, "operator '=='", id="where-bad-op"),
    pytest.param({"data_where": [("a", "like", "x")]}, "not one of", id="where-like"),
    pytest.param({"data_where": [("a", "<", True)]}, "= or !=", id="where-bool-order"),
    pytest.param({"data_where": [("a", ">=", None)]}, "= or !=", id="where-null-order"),
    pytest.param({"data_where": [("a", "=", [1])]}, "str, int, float", id="where-list"),
    pytest.param({"data_where": [("a", "=", {"b": 1})]}, "str, int, float", id="where-dict"),
    pytest.param({"data_where": [("a", "<", math.inf)]}, "finite", id="where-inf"),
    pytest.param({"data_where": [("a", "=", math.nan)]}, "finite", id="where-nan"),
    pytest.param({"data_where": [("a", "=", 2**63)]}, "64 bits", id="where-big-int"),
    pytest.param({"data_where": [("a", "=", "\ud800")]}, "surrogates", id="where-surrogate"),
    pytest.param({"data_where": [("a", "=", Decimal(1))]}, "Decimal", id="where-decimal"),
]


@pytest.mark.parametrize(("filters", "message"), BAD_DATA_FILTERS)
async def test_bad_data_filters_raise_value_error(
    log: EventLogger, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        await log.list_events(**filters)
    with pytest.raises(ValueError, match=re.escape(message)):
        await log.count_events(**filters)
    with pytest.raises(ValueError, match=re.escape(message)):
        log.follow(**filters)
    with pytest.raises(ValueError, match=re.escape(message)):
        await log.get_event_histogram(since=T0, every=timedelta(days=1000), **filters)
