"""Property: any valid event reads back equal, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_log import EventLogger, EventType, InvalidEventError
from event_log._redact import Redactor

# Text both backends can store: any Unicode scalar except NUL and lone surrogates.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
# PostgreSQL jsonb keeps numbers as decimals: a float is exact through it only when
# its shortest repr has no exponent, so floats stay within 1e15 in magnitude.
floats = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)
# Keys that are not secret-looking: the default redaction would mask their values.
keys = text.filter(lambda k: not Redactor().is_secret(k))
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | floats | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)
segment = st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True)
event_types = st.sampled_from(list(EventType)) | st.lists(segment, min_size=2, max_size=4).map(
    ".".join
).filter(lambda t: len(t) <= 64)
ids = st.none() | text.filter(lambda s: 0 < len(s) <= 255)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
timestamps = st.none() | st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 1, 1), timezones=offsets
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    event_type=event_types,
    source=text.filter(lambda s: 0 < len(s) <= 255),
    task_id=ids,
    agent_id=ids,
    data=st.none() | st.dictionaries(keys, json_values, max_size=5),
    timestamp=timestamps,
)
async def test_any_valid_event_reads_back_equal(
    log: EventLogger,
    event_type: str,
    source: str,
    task_id: str | None,
    agent_id: str | None,
    data: dict[str, Any] | None,
    timestamp: datetime | None,
) -> None:
    event = await log.log_event(
        event_type, source, task_id=task_id, agent_id=agent_id, data=data, timestamp=timestamp
    )
    assert event.data == data
    if timestamp is not None:
        assert event.timestamp == timestamp
        assert event.timestamp.tzinfo is UTC
    assert await log.get_event(event.id) == event
    page = await log.list_events(event_type=event_type, source=source, task_id=task_id, limit=1000)
    assert event in page.events


@settings(max_examples=200, deadline=None)
@given(value=st.from_regex(r"[a-zA-Z0-9_.*-]{0,70}", fullmatch=True))
def test_event_type_rule_matches_the_contract(value: str) -> None:
    import re

    from event_log._models import check_event_type

    valid = len(value) <= 64 and re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", value)
    if valid:
        assert check_event_type(value) == value
    else:
        try:
            check_event_type(value)
        except InvalidEventError:
            pass
        else:
            raise AssertionError(f"{value!r} was accepted")
