"""The contract suite's tests, run on SyncEventLogger through a thin async view of it.

The ``log`` fixture here replaces conftest's EventLogger with :class:`AsyncView`: each
method of the SyncEventLogger, awaited through ``asyncio.to_thread`` (so concurrent
callers really are concurrent threads), ``emit`` and the properties as they are, and
``follow`` as an async iterator over the blocking one. The test functions are
test_contract's own, imported unchanged; SQLite files and PostgreSQL are enough (the
view changes nothing a backend decides). Each parameterised family runs on a
selection of its cases (every case is SQL the mirror passes through unchanged).

The tests that do not apply are in LEFT_OUT, each with the reason (test_sync checks that
every contract test is run here or left out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import test_contract as contract
from event_log import Event
from event_log.sync import SyncEventLogger, SyncFollower
from test_contract import (
    test_agent_events_are_newest_first_and_limited,
    test_custom_dotted_event_type_is_accepted,
    test_data_filters_combine_with_each_other_and_other_filters,
    test_data_is_converted_the_way_pydantic_json_mode_does,
    test_emit_from_other_threads,
    test_emit_then_flush_commits_everything,
    test_event_json_wire_form,
    test_events_are_immutable,
    test_get_event_returns_none_for_unknown_or_malformed_ids,
    test_histogram_with_a_data_filter,
    test_hundred_concurrent_writers_lose_nothing,
    test_ids_logged_one_after_another_strictly_increase,
    test_keyset_pages_never_skip_or_repeat_on_ties,
    test_keyset_pages_with_a_data_filter,
    test_last_page_has_no_cursor,
    test_list_events_filters,
    test_log_event_returns_the_stored_event,
    test_log_events_commits_all_and_accepts_mappings_and_models,
    test_log_events_refuses_unknown_fields,
    test_one_invalid_caller_never_fails_another,
    test_paging_while_others_insert_sees_each_existing_event_once,
    test_prefix_filter_treats_underscore_literally,
    test_recent_events_and_summary_cover_the_window,
    test_task_timeline_has_no_silent_cap,
    test_task_timeline_is_oldest_first,
    test_text_filters_match_exactly,
    test_timestamp_is_stored_in_utc_with_microseconds,
)

__all__ = [
    "test_agent_events_are_newest_first_and_limited",
    "test_custom_dotted_event_type_is_accepted",
    "test_data_filters_combine_with_each_other_and_other_filters",
    "test_data_is_converted_the_way_pydantic_json_mode_does",
    "test_emit_from_other_threads",
    "test_emit_then_flush_commits_everything",
    "test_event_json_wire_form",
    "test_events_are_immutable",
    "test_get_event_returns_none_for_unknown_or_malformed_ids",
    "test_histogram_with_a_data_filter",
    "test_hundred_concurrent_writers_lose_nothing",
    "test_ids_logged_one_after_another_strictly_increase",
    "test_keyset_pages_never_skip_or_repeat_on_ties",
    "test_keyset_pages_with_a_data_filter",
    "test_last_page_has_no_cursor",
    "test_list_events_filters",
    "test_log_event_returns_the_stored_event",
    "test_log_events_commits_all_and_accepts_mappings_and_models",
    "test_log_events_refuses_unknown_fields",
    "test_one_invalid_caller_never_fails_another",
    "test_paging_while_others_insert_sees_each_existing_event_once",
    "test_prefix_filter_treats_underscore_literally",
    "test_recent_events_and_summary_cover_the_window",
    "test_task_timeline_has_no_silent_cap",
    "test_task_timeline_is_oldest_first",
    "test_text_filters_match_exactly",
    "test_timestamp_is_stored_in_utc_with_microseconds",
]


class AsyncFollow(AsyncIterator[Event]):
    """A SyncFollower as an async iterator: each ``next()`` in a worker thread."""

    def __init__(self, following: SyncFollower) -> None:
        self._following = following

    async def __anext__(self) -> Event:
        event = await asyncio.to_thread(next, self._following, None)
        if event is None:
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        await asyncio.to_thread(self._following.close)


class AsyncView:
    """What a contract test sees: SyncEventLogger's methods, awaited in worker threads."""

    def __init__(self, log: SyncEventLogger) -> None:
        self._log = log

    def emit(self, *args: Any, **kwargs: Any) -> Event:
        return self._log.emit(*args, **kwargs)

    def follow(self, **kwargs: Any) -> AsyncFollow:
        return AsyncFollow(self._log.follow(**kwargs))  # a bad filter raises here, as there

    def __getattr__(self, name: str) -> Any:
        if isinstance(getattr(SyncEventLogger, name), property):
            return getattr(self._log, name)
        method: Callable[..., Any] = getattr(self._log, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


OWN_LOGGER = "it opens its own EventLogger from a URL, so never sees this fixture (test_sync "
OWN_LOGGER += "covers the same ground for SyncEventLogger)"
LEFT_OUT = {
    "test_data_size_limit_is_configurable": OWN_LOGGER,
    "test_closed_logger_refuses_calls_and_close_is_idempotent": OWN_LOGGER,
    "test_close_flushes_pending_emits": OWN_LOGGER,
    "test_foreign_and_tampered_cursors_are_refused": OWN_LOGGER,
    "test_prune_deletes_old_events_in_batches": OWN_LOGGER,
    "test_prune_runs_while_others_log": OWN_LOGGER,
    "test_storage_failure_raises_storage_error_and_is_counted": OWN_LOGGER,
    "test_failed_batch_does_not_fail_other_callers": "it drives the EventLogger's private writer",
    "test_follow_with_a_data_filter": (
        "it asserts the follower is the EventLogger's own class (test_sync follows with "
        "filters through SyncEventLogger)"
    ),
    "test_invalid_event_error_is_a_value_error": "it uses no logger",
}

# conftest's backend_url, on SQLite files and PostgreSQL only (every test here uses it).
pytestmark = pytest.mark.parametrize(
    "backend_url",
    [
        pytest.param("sqlite-file", marks=pytest.mark.sqlite, id="sqlite-file"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    ],
    indirect=True,
)


@pytest.fixture
def log(backend_url: str) -> Iterator[AsyncView]:
    with SyncEventLogger.open(backend_url) as logger:
        yield AsyncView(logger)


def cases(family: list[Any], *ids: str) -> list[Any]:
    """The cases of a parameterised contract test that run here, by id."""
    chosen = [case for case in family if case.id in ids]
    assert [case.id for case in chosen] == list(ids), "a case was renamed in test_contract"
    return chosen


@pytest.mark.parametrize(
    "override",
    cases(
        contract.BAD_EVENTS,
        "uppercase-type",
        "source-none",
        "deep-int-key",
        "data-too-big",
        "naive-timestamp",
    ),
)
async def test_invalid_event_is_refused_and_nothing_is_written(
    log: Any, override: dict[str, object]
) -> None:
    await contract.test_invalid_event_is_refused_and_nothing_is_written(log, override)


def mark_cases(test: Any) -> list[Any]:
    """The cases of a contract test's own parametrize mark."""
    (mark,) = (m for m in test.pytestmark if m.name == "parametrize")
    return list(mark.args[1])


@pytest.mark.parametrize(
    ("filters", "error"),
    [
        case
        for case in mark_cases(contract.test_list_events_refuses_bad_arguments)
        if case[0] in ({"limit": 1001}, {"since": "2026-01-01T00:00:00Z"}, {"source": 7})
    ],
)
async def test_list_events_refuses_bad_arguments(
    log: Any, filters: dict[str, object], error: type[Exception]
) -> None:
    await contract.test_list_events_refuses_bad_arguments(log, filters, error)


@pytest.mark.parametrize(
    ("contains", "expected"),
    cases(contract.CONTAINS_CASES, "int-equals-float", "nested-array-subset", "key-with-quotes"),
)
async def test_data_contains(log: Any, contains: dict[str, object], expected: set[str]) -> None:
    await contract.test_data_contains(log, contains, expected)


@pytest.mark.parametrize(
    ("where", "expected"), cases(contract.WHERE_CASES, "gt-float", "eq-string", "range")
)
async def test_data_where(
    log: Any, where: list[tuple[str, str, object]], expected: set[str]
) -> None:
    await contract.test_data_where(log, where, expected)


@pytest.mark.parametrize(
    ("filters", "message"),
    cases(contract.BAD_DATA_FILTERS, "contains-not-mapping", "where-bad-op", "where-nan"),
)
async def test_bad_data_filters_raise_value_error(
    log: Any, filters: dict[str, Any], message: str
) -> None:
    await contract.test_bad_data_filters_raise_value_error(log, filters, message)
