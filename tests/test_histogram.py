"""get_event_histogram: epoch-aligned buckets counted in SQL, on every backend."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


EVERIES = [timedelta(seconds=7), timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    offsets=st.lists(
        st.one_of(
            st.integers(-600, 7800).map(lambda s: timedelta(seconds=s)),
            st.integers(-2, 26).map(lambda k: timedelta(minutes=5 * k)),  # on boundaries
            st.integers(-2, 26).map(lambda k: timedelta(minutes=5 * k, microseconds=-1)),
        ),
        max_size=40,
    ),
    kinds=st.lists(st.sampled_from(["task.created", "task.failed", "tool.called"]), min_size=1),
    agents=st.lists(st.sampled_from([None, "a1", "a2", "b"]), min_size=1),
    since_s=st.integers(-300, 3600),
    length_s=st.integers(1, 7200),
    every=st.sampled_from(EVERIES),
    by=st.sampled_from([None, "event_type", "agent_id", "source"]),
)
async def test_every_bucket_matches_a_count_in_python(
    log: EventLogger,
    offsets: list[timedelta],
    kinds: list[str],
    agents: list[str | None],
    since_s: int,
    length_s: int,
    every: timedelta,
    by: str | None,
) -> None:
    task = f"h{uuid.uuid4().hex}"  # this example's events only
    events = await log.log_events(
        [
            {
                "event_type": kinds[i % len(kinds)],
                "source": f"s{i % 3}",
                "task_id": task,
                "agent_id": agents[i % len(agents)],
                "timestamp": T0 + offset,
            }
            for i, offset in enumerate(offsets)
        ]
    )
    since = T0 + timedelta(seconds=since_s)
    until = since + timedelta(seconds=length_s)
    if -(-(until - since) // every) + 1 > 1000:
        return
    buckets = await log.get_event_histogram(
        since=since, until=until, every=every, by=by, task_id=task
    )
    assert buckets[0].start <= since < buckets[0].end
    assert buckets[-1].start < until <= buckets[-1].end
    for bucket in buckets:
        inside = [
            e for e in events if max(bucket.start, since) <= e.timestamp < min(bucket.end, until)
        ]
        assert bucket.total == len(inside)
        expected = {} if by is None else dict(Counter(str(getattr(e, by) or "") for e in inside))
        assert bucket.counts == expected
