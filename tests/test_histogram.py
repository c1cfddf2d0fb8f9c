"""get_event_histogram: epoch-aligned buckets counted in SQL, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from event_log import EventLogger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def seed(log: EventLogger) -> None:
    def at(minutes: float, event_type: str, source: str = "c", agent: str | None = None) -> dict:
        return {
            "event_type": event_type,
            "source": source,
            "agent_id": agent,
            "timestamp": T0 + timedelta(minutes=minutes),
        }

    await log.log_events(
        [
            at(0, "task.created"),  # first instant of bucket 0
            at(4.999, "task.failed", agent="a1"),
            at(5, "task.failed", agent="a1"),  # first instant of bucket 1
            at(7, "tool.called", "agent", "a2"),
            at(14, "task.failed", agent="a2"),
            at(15, "task.created"),  # == until: excluded
            at(-0.001, "task.created"),  # before since: excluded
        ]
    )


async def test_buckets_are_aligned_complete_and_exact_at_the_edges(log: EventLogger) -> None:
    await seed(log)
    buckets = await log.get_event_histogram(
        since=T0, until=T0 + timedelta(minutes=15), every=timedelta(minutes=5)
    )
    assert [b.start for b in buckets] == [T0 + timedelta(minutes=m) for m in (0, 5, 10)]
    assert [b.end - b.start for b in buckets] == [timedelta(minutes=5)] * 3
    assert [b.total for b in buckets] == [2, 2, 1]
    assert all(b.counts == {} for b in buckets)


async def test_grouping_and_filters(log: EventLogger) -> None:
    await seed(log)
    by_type = await log.get_event_histogram(
        since=T0, until=T0 + timedelta(minutes=15), every=timedelta(minutes=5), by="event_type"
    )
    assert [b.counts for b in by_type] == [
        {"task.created": 1, "task.failed": 1},
        {"task.failed": 1, "tool.called": 1},
        {"task.failed": 1},
    ]
    by_agent = await log.get_event_histogram(
        since=T0, until=T0 + timedelta(minutes=15), every=timedelta(minutes=15), by="agent_id"
    )
    assert by_agent[0].counts == {"": 1, "a1": 2, "a2": 2}
    failures = await log.get_event_histogram(
        since=T0,
        until=T0 + timedelta(minutes=15),
        every=timedelta(minutes=5),
        event_type="task.*",
        agent_id="a1",
    )
    assert [b.total for b in failures] == [1, 1, 0]


async def test_since_between_boundaries_still_aligns_to_the_epoch(log: EventLogger) -> None:
    await seed(log)
    buckets = await log.get_event_histogram(
        since=T0 + timedelta(minutes=6),
        until=T0 + timedelta(minutes=11),
        every=timedelta(minutes=5),
    )
    assert [b.start for b in buckets] == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    # Counting starts at `since`: the 5-minute event is before it.
    assert [b.total for b in buckets] == [1, 0]


async def test_empty_database_gives_zero_buckets(log: EventLogger) -> None:
    buckets = await log.get_event_histogram(
        since=T0, until=T0 + timedelta(hours=1), every=timedelta(minutes=10)
    )
    assert len(buckets) == 6
    assert {b.total for b in buckets} == {0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"every": timedelta(0)},
        {"every": timedelta(seconds=-1)},
        {"every": timedelta(seconds=1), "until": T0 + timedelta(hours=1)},  # 3,600 buckets
        {"every": timedelta(minutes=1), "until": T0},  # empty window
        {"every": timedelta(minutes=1), "by": "data"},
        {"every": 60},
    ],
)
async def test_bad_arguments_raise_value_error(log: EventLogger, kwargs: dict) -> None:
    kwargs.setdefault("until", T0 + timedelta(minutes=10))
    with pytest.raises(ValueError):  # noqa: PT011 - several messages
        await log.get_event_histogram(since=T0, **kwargs)
    with pytest.raises(ValueError, match="aware"):
        await log.get_event_histogram(since=datetime(2026, 1, 1), every=timedelta(minutes=5))
