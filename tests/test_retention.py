"""Exclusions and per-type retention, on every backend."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest

from event_log import EventLogger, RetentionPolicy
from follow_helpers import started


def aged(event_type: str, days: float, source: str = "c") -> dict[str, object]:
    return {
        "event_type": event_type,
        "source": source,
        "timestamp": datetime.now(UTC) - timedelta(days=days),
    }


async def test_exclusions(log: EventLogger) -> None:
    await log.log_events(
        [
            aged("task.created", 0),
            aged("task.created.retry", 0),  # a custom type under the task.created prefix
            aged("tool.called", 0, source="noisy"),
            aged("tool.completed", 0),
            aged("system.error", 0, source="noisy"),
        ]
    )

    async def types(**filters: object) -> list[str]:
        page = await log.list_events(newest_first=False, **filters)  # type: ignore[arg-type]
        return sorted(e.event_type for e in page.events)

    assert await types(exclude_event_type="tool.*") == [
        "system.error",
        "task.created",
        "task.created.retry",
    ]
    # A prefix that is also an exact type excludes only what is below it.
    assert await types(exclude_event_type="task.created.*") == [
        "system.error",
        "task.created",
        "tool.called",
        "tool.completed",
    ]
    assert await types(exclude_event_type=["task.created", "tool.*"]) == [
        "system.error",
        "task.created.retry",
    ]
    assert await types(exclude_source="noisy") == [
        "task.created",
        "task.created.retry",
        "tool.completed",
    ]
    assert await types(event_type="tool.*", exclude_source=["noisy", "other"]) == ["tool.completed"]
    assert await log.count_events(exclude_event_type="task.*", exclude_source="noisy") == 1
    with pytest.raises(ValueError, match="exclude_event_type"):
        await log.list_events(exclude_event_type="NOT A TYPE")


async def test_follow_honours_exclusions(log: EventLogger) -> None:
    follower = log.follow(exclude_event_type="tool.*")
    reader = asyncio.ensure_future(follower.__anext__())
    await started(follower)
    await log.log_event("tool.called", "a")
    wanted = await log.log_event("task.created", "c")
    assert await asyncio.wait_for(reader, 5) == wanted


async def test_per_type_retention_longest_match_wins(log: EventLogger) -> None:
    await log.log_events(
        [
            aged("tool.called", 10),  # tool.* keeps 7 days: goes
            aged("tool.called", 5),  # stays
            aged("tool.failed", 10),  # tool.failed keeps 30 (longer match): stays
            aged("system.error", 60),  # system.error keeps 90: stays
            aged("system.error", 100),  # goes
            aged("task.created", 40),  # default 30: goes
            aged("task.created", 20),  # stays
        ]
    )
    deleted = await log.prune_events(
        30, overrides={"tool.*": 7, "tool.failed": 30, "system.error": 90}
    )
    assert deleted == 3
    left = sorted(
        (e.event_type, round((datetime.now(UTC) - e.timestamp).days))
        for e in (await log.list_events()).events
    )
    assert left == [
        ("system.error", 60),
        ("task.created", 20),
        ("tool.called", 5),
        ("tool.failed", 10),
    ]


async def test_an_override_equal_to_the_default_and_an_empty_database(log: EventLogger) -> None:
    assert await log.prune_events(30, overrides={"task.*": 30}) == 0
    await log.log_events([aged("task.created", 31), aged("tool.called", 31)])
    assert await log.prune_events(30, overrides={"task.*": 30}) == 2


@pytest.mark.parametrize(
    "overrides",
    [{"Not A Type": 3}, {"tool.*": -1}, {"tool.*": float("nan")}, {"*": 3}],
)
async def test_bad_overrides_raise_value_error(log: EventLogger, overrides: dict) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message names the bad part
        await log.prune_events(30, overrides=overrides)
    with pytest.raises(ValueError):  # noqa: PT011
        RetentionPolicy(30, overrides)


async def test_a_scheduled_policy_prunes_in_the_background(migratable_url: str) -> None:
    policy = RetentionPolicy(30, {"tool.*": 1}, every_minutes=0.001)
    async with EventLogger.open(migratable_url) as seeder:
        await seeder.log_events([aged("tool.called", 2), aged("task.created", 2)])
    async with EventLogger.open(migratable_url, retention=policy) as log:
        for _ in range(100):
            if await log.count_events() == 1:
                break
            await asyncio.sleep(0.02)
        assert [e.event_type for e in (await log.list_events()).events] == ["task.created"]


async def test_a_failing_scheduled_prune_is_reported(
    backend_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from event_log._engine import create_engine, resolve_url

    engine = create_engine(resolve_url(backend_url))  # no schema: every prune fails
    try:
        if engine.dialect.name == "postgresql":  # postgres-partitioned comes with one
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DROP TABLE IF EXISTS event_log, event_log_sequence")
        with caplog.at_level(logging.ERROR, logger="event_log"):
            log = EventLogger(engine, retention=RetentionPolicy(30, every_minutes=0.001))
            for _ in range(100):
                if log.retention_failures >= 2:
                    break
                await asyncio.sleep(0.02)
            await log.close()
        assert log.retention_failures >= 2  # reported each time, and retried
        assert "scheduled prune failed" in caplog.text
    finally:
        await engine.dispose()


def test_a_scheduled_policy_needs_a_running_loop() -> None:
    from event_log._engine import create_engine, resolve_url

    engine = create_engine(resolve_url("sqlite+aiosqlite://"))
    with pytest.raises(ValueError, match="running loop"):
        EventLogger(engine, retention=RetentionPolicy(every_minutes=5))
