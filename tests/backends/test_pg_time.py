"""PostgreSQL timestamp text: the same instant as ``isoformat()``, made once per second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from event_log.backends.postgresql._time import timestamp_texts

# The range validation admits (check_aware), in UTC as rows hold them, or not.
timestamps = st.datetimes(
    min_value=datetime(1, 1, 3),
    max_value=datetime(9999, 12, 29),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]
    ),
)


def test_a_utc_timestamp_has_microseconds_and_the_offset_in_hours() -> None:
    whens = [datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(987, 6, 5, tzinfo=UTC)]
    assert timestamp_texts(whens) == [
        "2026-01-02T03:04:05.000006+00",
        "0987-06-05T00:00:00.000000+00",
    ]


@given(
    start=timestamps,
    steps=st.lists(st.integers(0, 2_000_000), min_size=1, max_size=20),
    others=st.lists(timestamps, max_size=3),
)
def test_every_text_reads_back_as_the_same_instant(
    start: datetime, steps: list[int], others: list[datetime]
) -> None:
    # Runs within and across seconds (each second's text is made once), and a
    # few timestamps elsewhere, in other offsets too.
    whens = [start.astimezone(UTC)]
    for step in steps:
        whens.append(whens[-1] + timedelta(microseconds=step))
    whens[1:1] = others
    assert [datetime.fromisoformat(text) for text in timestamp_texts(whens)] == whens
