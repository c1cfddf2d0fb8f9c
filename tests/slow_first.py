"""The slowest tests go first, one share at the head of each pytest-xdist worker's queue.

``--dist worksteal`` hands each worker one contiguous slice of the collection
and lets an idle worker take the tail of a busy one's slice. A long test left
near a slice's end starts late and keeps its worker busy after the others
finish; all of them at the head of the collection would land in one worker's
slice. So the known-slow tests are dealt out, longest first, to the slice whose
share is lightest so far, and each slice starts with its share. Without
pytest-xdist the slow tests simply run first. Every test still runs, once.
"""

from __future__ import annotations

import os

import pytest

__all__ = ["SLOW_TESTS", "order_slow_first"]

# Test functions (file::name, every parameter of each), with about what one run takes in seconds
# on an idle 2-core machine, from `pytest --durations`. A renamed test only loses
# its place at the front.
SLOW_TESTS: dict[str, float] = {
    "test_bench.py::test_quick_benchmark_reports_every_row": 21,
    "test_bench_processes.py::test_the_quick_run_prints_every_row": 13,
    "test_faults.py::test_sigkill_loses_no_acknowledged_event": 9,
    "test_many_followers.py::test_followers_resume_from_their_cursor_on_a_plain_table": 9,
    "test_many_followers.py::test_followers_resume_from_their_cursor_on_a_partitioned_table": 9,
    "test_pg_faults.py::test_a_timed_out_batch_answers_all_its_callers_at_once": 6,
    "test_cli_bad_day.py::test_readers_leave_a_database_unchanged": 6,
    "test_pg_stalls.py::test_transactions_idle_elsewhere_delay_no_followed_event": 6,
    "test_migrations.py::test_cli_upgrade_check_and_downgrade": 5,
    "test_pg_faults.py::test_a_killed_listen_connection_is_reopened_and_wakes_followers_again": 5,
    "test_follow_interleaved.py::test_interleaved_transactions_on_a_plain_table": 4,
    "test_follow_interleaved.py::test_interleaved_transactions_on_a_partitioned_table": 4,
    "test_bench_alternate.py::test_each_round_sets_the_scenarios_beside_the_raw_limit": 3,
    "test_cli_bad_day.py::test_a_listing_cut_at_its_limit_says_so": 3,
    "test_cli_bad_day.py::test_a_read_only_file_is_named": 3,
    "test_many_writers.py::test_four_processes_of_25_tasks_lose_nothing_and_follow_in_order": 3,
    "test_web_e2e.py::test_live_page_in_chromium": 3,
}


def _weight(item: pytest.Item) -> float:
    return SLOW_TESTS.get(item.nodeid.split("[", 1)[0].rsplit("/", 1)[-1], 0.0)


def _slice_sizes(total: int, workers: int) -> list[int]:
    """How worksteal first splits ``total`` tests over ``workers`` (its own arithmetic)."""
    sizes = []
    for i in range(workers):
        size = total // (workers - i)
        sizes.append(size)
        total -= size
    return sizes


def order_slow_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place (see the module's docstring)."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    slow = sorted((item for item in items if _weight(item)), key=_weight, reverse=True)
    if not slow:
        return
    rest = [item for item in items if not _weight(item)]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for item in slow:
        lightest = loads.index(min(loads))
        shares[lightest].append(item)
        loads[lightest] += _weight(item)
    ordered: list[pytest.Item] = []
    taken = 0
    for share, size in zip(shares, _slice_sizes(len(items), workers), strict=True):
        fill = max(0, size - len(share))
        ordered += share + rest[taken : taken + fill]
        taken += fill
    ordered += rest[taken:]
    assert len(ordered) == len(items)
    items[:] = ordered
