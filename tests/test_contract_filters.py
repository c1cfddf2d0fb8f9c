"""Every read method gives the same answer with ``filter=EventFilter(...)`` as with the
same filters as keywords, on every backend; and the filter object's own rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from event_log import Event, EventFilter, EventLogger

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Each case uses one or more filter fields; together they use every field.
CASES: list[dict[str, Any]] = [
    {},
    {"event_type": "task.created"},
    {"event_type": ["task.created", "bid.submitted"]},
    {"event_type": "task.*"},
    {"source": "coordinator"},
    {"task_id": "t1"},
    {"agent_id": "a2"},
    {"since": BASE + timedelta(seconds=2), "until": BASE + timedelta(seconds=5)},
    {"exclude_event_type": "bid.*", "exclude_source": ["agent-a1"]},
    {"data_contains": {"model": "gpt-4"}},
    {"data_where": [("bid_sats", ">=", 20)]},
    {"event_type": "task.*", "task_id": "t1", "data_where": [("step", "<", 3)]},
]
assert set().union(*CASES) == set(EventFilter.model_fields)


async def _seed(log: EventLogger) -> list[Event]:
    rows: list[dict[str, Any]] = []
    for i in range(8):
        task, agent = f"t{i % 2}", f"a{i % 3}"
        rows += [
            {
                "event_type": "task.created",
                "source": "coordinator",
                "task_id": task,
                "data": {"step": i, "model": "gpt-4" if i % 2 else "claude"},
            },
            {
                "event_type": "bid.submitted",
                "source": f"agent-{agent}",
                "task_id": task,
                "agent_id": agent,
                "data": {"bid_sats": 10 * i},
            },
            {
                "event_type": "tool.called",
                "source": f"agent-{agent}",
                "agent_id": agent,
                "data": {"step": i},
            },
        ]
    for n, row in enumerate(rows):
        row["timestamp"] = BASE + timedelta(seconds=n / 3)
    return await log.log_events(rows)


def _ids(events: list[Event]) -> list[str]:
    return [event.id for event in events]


@pytest.mark.parametrize("case", CASES, ids=[",".join(c) or "none" for c in CASES])
async def test_every_read_method_both_ways(log: EventLogger, case: dict[str, Any]) -> None:
    await _seed(log)
    flt = EventFilter(**case)

    assert await log.count_events(filter=flt) == await log.count_events(**case)
    for newest_first in (True, False):
        by_filter = await log.list_events(filter=flt, limit=5, newest_first=newest_first)
        by_keywords = await log.list_events(**case, limit=5, newest_first=newest_first)
        assert _ids(by_filter.events) == _ids(by_keywords.events)
        assert (by_filter.next_cursor is None) == (by_keywords.next_cursor is None)

    window = {"since": BASE - timedelta(minutes=1), "until": BASE + timedelta(minutes=1)}
    hist_filter = flt if "since" in case else flt.model_copy(update=window)
    hist_keywords = case if "since" in case else {**case, **window}
    every = timedelta(seconds=3)
    assert await log.get_event_histogram(
        filter=hist_filter, every=every, by="event_type"
    ) == await log.get_event_histogram(**hist_keywords, every=every, by="event_type")

    # follow: the stored matching events after a cursor come first, in order.
    first = (await log.list_events(limit=1, newest_first=False)).events[0]
    stored = (await log.list_events(filter=flt, limit=1000, newest_first=False)).events
    wanted = [e.id for e in stored if (e.timestamp, e.id) > (first.timestamp, first.id)]
    for follower in (log.follow(filter=flt, cursor=first.id), log.follow(**case, cursor=first.id)):
        got: list[str] = []
        async with asyncio.timeout(30):
            while len(got) < len(wanted):
                got.append((await anext(follower)).id)
        await follower.aclose()  # type: ignore[attr-defined]
        assert got == wanted


async def test_filter_and_keywords_at_once_is_an_error(log: EventLogger) -> None:
    flt = EventFilter(source="x")
    with pytest.raises(ValueError, match="not both"):
        await log.count_events(filter=flt, task_id="t1")
    with pytest.raises(ValueError, match="not both"):
        await log.list_events(filter=flt, source="x")
    with pytest.raises(ValueError, match="not both"):
        log.follow(filter=flt, agent_id="a")
    with pytest.raises(ValueError, match="not both"):
        await log.get_event_histogram(filter=flt, since=BASE, every=timedelta(hours=1))
    with pytest.raises(ValueError, match="must be an EventFilter"):
        await log.count_events(filter={"source": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        await log.count_events(sauce="x")  # type: ignore[call-arg]


async def test_histogram_needs_since_either_way(log: EventLogger) -> None:
    with pytest.raises(ValueError, match="since is required"):
        await log.get_event_histogram(filter=EventFilter(), every=timedelta(hours=1))
    with pytest.raises(ValueError, match="since is required"):
        await log.get_event_histogram(every=timedelta(hours=1))


# -- the object itself (no database) --------------------------------------------------------


def test_filter_is_frozen_and_hashable_by_value() -> None:
    flt = EventFilter(event_type=["task.created", "task.*"], exclude_source={"x"})
    assert flt.event_type == ("task.created", "task.*")
    assert flt.exclude_source == ("x",)
    with pytest.raises(ValidationError):
        flt.source = "y"  # type: ignore[misc]
    assert EventFilter(source="a") == EventFilter(source="a")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_type": "Not A Type"}, "neither an event type"),
        ({"exclude_event_type": ["task.*", 7]}, "must be a string"),
        ({"source": 7}, "source must be a string"),
        ({"task_id": "nul\x00"}, "NUL"),
        ({"since": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"until": "2026-01-01T00:00:00Z"}, "must be a datetime"),
        ({"data_contains": [1]}, "mapping"),
        ({"data_where": [("k", "~", 1)]}, "operator"),
        ({"data_where": "k>1"}, "triples"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_raise_value_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EventFilter(**fields)


def test_from_texts_reads_what_a_command_line_or_query_string_carries() -> None:
    flt = EventFilter.from_texts(
        {
            "event_type": ["task.*", "bid.submitted,tool.called"],
            "source": "coordinator",
            "since": "2026-03-01T12:00:00Z",
            "until": None,
            "exclude_source": [],
            "data_contains": '{"model": "gpt-4"}',
            "data_where": ["bid_sats>=100", "model=gpt-4", "ok!=true"],
        }
    )
    assert flt == EventFilter(
        event_type=("task.*", "bid.submitted", "tool.called"),
        source="coordinator",
        since=BASE,
        data_contains={"model": "gpt-4"},
        data_where=[("bid_sats", ">=", 100), ("model", "=", "gpt-4"), ("ok", "!=", True)],
    )


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ({"since": "1700000000"}, "ISO 8601"),
        ({"until": "yesterday"}, "not an ISO 8601 time"),
        ({"data_contains": "{"}, "not valid JSON"),
        ({"data_contains": "[1]"}, "JSON object"),
        ({"data_where": ["bid_sats"]}, "KEY OP VALUE"),
        ({"data_where": [">3"]}, "key before the operator is empty"),
        ({"event_type": "Bad Type"}, "neither an event type"),
        ({"colour": "red"}, "unexpected keyword"),
    ],
)
def test_from_texts_refuses_bad_text_with_one_line(texts: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        EventFilter.from_texts(texts)
    assert "\n" not in str(caught.value)
