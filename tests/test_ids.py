"""UUIDv7 ids: one at a time or a batch at a time, always strictly increasing."""

from __future__ import annotations

import threading
import uuid

from hypothesis import given
from hypothesis import strategies as st

from event_log._ids import _canonical, _canonical_many, new_id, new_ids


def _valid(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_batches_and_single_ids_interleave_in_strictly_increasing_order() -> None:
    made: list[str] = []
    for size in (1, 5, 1_000, 0, 3):
        made.append(new_id())
        batch = new_ids(size)
        assert len(batch) == size
        made.extend(batch)
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(_valid(value) for value in made)


def test_threads_making_batches_never_share_an_id() -> None:
    results: list[list[str]] = []

    def work() -> None:
        mine = [value for _ in range(50) for value in new_ids(40)]
        assert mine == sorted(mine)
        results.append(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for mine in results for value in mine]
    assert len(every) == 4 * 50 * 40 == len(set(every))


# 48 bits of milliseconds and 74 random bits: the values _next_values makes.
_VALUES = st.integers(min_value=0, max_value=(1 << 122) - 1)


@given(st.lists(_VALUES, max_size=20), st.data())
def test_a_batch_formats_every_id_as_one_at_a_time_would(
    values: list[int], data: st.DataObject
) -> None:
    # Runs of consecutive values, some crossing the boundary of the bits a batch shares.
    start = data.draw(_VALUES)
    values = [
        *values,
        *range(start, start + 3),
        (start | ((1 << 62) - 1)),
        (start | ((1 << 62) - 1)) + 1,
    ]
    values = [value for value in values if value < 1 << 122]
    assert _canonical_many(values) == [_canonical(value) for value in values]
    for value, made in zip(values, _canonical_many(values), strict=True):
        parsed = uuid.UUID(made)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == value >> 74  # the millisecond timestamp
