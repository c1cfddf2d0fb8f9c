"""UUIDv7 ids: one at a time or a batch at a time, always strictly increasing."""

from __future__ import annotations

import threading
import uuid

from event_log._ids import new_id, new_ids


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
