"""Cancellation: callers cancelled mid-await never corrupt the log or the writer.

Every test runs on every backend and cancels real awaits at seeded random
moments: before the caller's task starts, after a few loop iterations, or after
a short sleep. Cancelling a caller abandons its wait, not its write: an event
queued before the cancellation may still commit, but then whole and once.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from event_log import Event, EventLogger
from follow_helpers import started

pytestmark = pytest.mark.fault

MEMORY_URL = "sqlite+aiosqlite://"  # the conftest's in-memory backend

SEED = 20_260_306
CALLERS = 200
BATCH_TRIALS = 30


def is_uuid7(value: str) -> bool:
    parsed = uuid.UUID(value)
    return parsed.version == 7 and str(parsed) == value


def random_moment(rng: random.Random) -> tuple[str, float]:
    """When to cancel: before the task runs, after n loop iterations, or after a sleep."""
    kind = rng.choice(["before-start", "yields", "sleep"])
    if kind == "yields":
        return kind, rng.randint(1, 30)
    if kind == "sleep":
        return kind, rng.uniform(0, 0.02)
    return kind, 0


async def cancel_at(task: asyncio.Task[Any], moment: tuple[str, float]) -> None:
    kind, amount = moment
    if kind == "yields":
        for _ in range(int(amount)):
            await asyncio.sleep(0)
    elif kind == "sleep":
        await asyncio.sleep(amount)
    task.cancel()


async def outcome(task: asyncio.Task[Any]) -> Any:
    """The task's result, or the CancelledError it ended with (any other error fails)."""
    try:
        return await task
    except asyncio.CancelledError as exc:
        assert task.cancelled()
        return exc


async def all_events(log: EventLogger, **filters: Any) -> list[Event]:
    events: list[Event] = []
    cursor = None
    while True:
        page = await log.list_events(limit=1000, cursor=cursor, newest_first=False, **filters)
        events.extend(page.events)
        if page.next_cursor is None:
            return events
        cursor = page.next_cursor


def assert_whole(event: Event) -> None:
    """Every field present and well-formed, as a committed row must be."""
    assert is_uuid7(event.id)
    assert event.event_type
    assert event.source
    assert event.timestamp.utcoffset() == timedelta(0)
    assert isinstance(event.data, dict)


async def assert_writer_works(log: EventLogger) -> None:
    fresh = await log.log_event("system.info", "after-cancel", data={"ok": True})
    assert await log.get_event(fresh.id) == fresh
    emitted = log.emit("system.info", "after-cancel", data={"emitted": True})
    await log.flush()
    assert log.stats.queued == 0
    assert log.stats.failed == 0
    assert await log.get_event(emitted.id) == emitted


async def test_cancelled_log_event_callers_never_corrupt_the_others(backend_url: str) -> None:
    rng = random.Random(SEED)
    # Small transactions: many batches in flight, so cancellations land in every phase.
    async with EventLogger.open(backend_url, max_batch_rows=16) as log:
        sent: dict[str, tuple[int, dict[str, Any]]] = {}
        tasks: dict[str, asyncio.Task[Event]] = {}
        victims = set(rng.sample(range(CALLERS), CALLERS // 2))
        cancellers = []
        for i in range(CALLERS):
            marker = f"caller-{i:03d}-{uuid.uuid4().hex}"
            data = {
                "marker": marker,
                "i": i,
                "pad": "x" * rng.randint(0, 300),
                "nested": {"list": [i, str(i), None, 1.5], "flag": i % 2 == 0},
            }
            sent[marker] = (i, data)
            task = asyncio.create_task(
                log.log_event(
                    "tool.called",
                    "cancel-test",
                    task_id=f"t-{i}",
                    agent_id=f"a-{i % 7}",
                    data=data,
                )
            )
            tasks[marker] = task
            if i in victims:
                moment = random_moment(rng)
                if moment[0] == "before-start":
                    task.cancel()
                else:
                    cancellers.append(asyncio.create_task(cancel_at(task, moment)))
        await asyncio.gather(*cancellers)
        results = {marker: await outcome(task) for marker, task in tasks.items()}

        returned = {m: r for m, r in results.items() if isinstance(r, Event)}
        cancelled = {m for m, r in results.items() if isinstance(r, asyncio.CancelledError)}
        assert len(returned) + len(cancelled) == CALLERS
        assert len(returned) >= CALLERS // 2  # nobody else was cancelled
        assert cancelled

        await log.flush()
        stored = await all_events(log, source="cancel-test")
        by_marker = {event.data["marker"]: event for event in stored if event.data}
        assert len(by_marker) == len(stored)  # no duplicates
        assert len({event.id for event in stored}) == len(stored)
        for marker, event in by_marker.items():
            assert_whole(event)
            i, data = sent[marker]
            assert event.event_type == "tool.called"
            assert event.source == "cancel-test"
            assert event.task_id == f"t-{i}"
            assert event.agent_id == f"a-{i % 7}"
            assert event.data == data
        for marker, event in returned.items():  # every caller that returned is stored
            assert by_marker[marker] == event
        committed_anyway = cancelled & by_marker.keys()
        assert by_marker.keys() == returned.keys() | committed_anyway
        assert await log.count_events(source="cancel-test") == len(returned) + len(committed_anyway)
        await assert_writer_works(log)


async def test_a_cancelled_log_events_batch_is_stored_whole_or_not_at_all(
    backend_url: str,
) -> None:
    rng = random.Random(SEED + 1)
    outcomes: Counter[tuple[str, str]] = Counter()
    async with EventLogger.open(backend_url) as log:
        for trial in range(BATCH_TRIALS):
            size = rng.choice([1, 2, 8, 9, 50, 300])
            batch = [
                {
                    "event_type": "bid.submitted",
                    "source": "batch-test",
                    "task_id": f"batch-{trial}",
                    "agent_id": f"a-{n % 3}",
                    "data": {"trial": trial, "n": n, "pad": "y" * rng.randint(0, 100)},
                }
                for n in range(size)
            ]
            # Other callers share the writer's transactions meanwhile.
            noise = [
                asyncio.create_task(log.log_event("tool.called", "noise", data={"t": trial}))
                for _ in range(rng.randint(0, 6))
            ]
            task = asyncio.create_task(log.log_events(batch))
            moment = random_moment(rng)
            if moment[0] == "before-start":
                task.cancel()
            else:
                await cancel_at(task, moment)
            result = await outcome(task)
            for other in noise:
                assert isinstance(await other, Event)
            await log.flush()

            stored = await all_events(log, task_id=f"batch-{trial}")
            assert len(stored) in (0, size), f"trial {trial}: {len(stored)} of {size} stored"
            if isinstance(result, list):
                assert sorted(stored, key=lambda e: e.id) == sorted(result, key=lambda e: e.id)
            if stored:
                assert sorted(e.data["n"] for e in stored if e.data) == list(range(size))
                for event, sent in zip(
                    sorted(stored, key=lambda e: e.data["n"] if e.data else -1), batch, strict=True
                ):
                    assert_whole(event)
                    assert event.data == sent["data"]
                    assert event.agent_id == sent["agent_id"]
            kind = "returned" if isinstance(result, list) else "cancelled"
            outcomes[kind, "stored" if stored else "none"] += 1
        assert outcomes["cancelled", "none"] > 0  # some batches really were cancelled
        assert outcomes["returned", "none"] == 0
        await assert_writer_works(log)


async def test_cancelling_a_blocked_flush_loses_no_emitted_event(backend_url: str) -> None:
    async with EventLogger.open(backend_url) as log:
        emitted = [log.emit("tool.called", "flush-test", data={"n": n}) for n in range(2_000)]
        blocked = asyncio.create_task(log.flush())
        await asyncio.sleep(0)
        assert not blocked.done()  # waiting for 2,000 rows to commit
        blocked.cancel()
        assert isinstance(await outcome(blocked), asyncio.CancelledError)

        emitted += [
            log.emit("tool.called", "flush-test", data={"n": n}) for n in range(2_000, 2_500)
        ]
        second = asyncio.create_task(log.flush())
        third = asyncio.create_task(log.flush())
        await asyncio.sleep(0)
        second.cancel()
        assert isinstance(await outcome(second), asyncio.CancelledError)
        await asyncio.wait_for(third, 60)  # a later flush still completes
        await asyncio.wait_for(log.flush(), 60)

        assert log.stats.queued == 0
        assert log.stats.failed == 0
        stored = await all_events(log, source="flush-test")
        assert {e.id for e in stored} == {e.id for e in emitted}
        assert len(stored) == 2_500
        await assert_writer_works(log)


async def test_a_cancelled_prune_leaves_the_table_consistent(backend_url: str) -> None:
    old, new = 3_000, 100
    now = datetime.now(UTC)
    start = now - timedelta(days=100)
    cutoff = now - timedelta(days=30)
    async with EventLogger.open(backend_url, prune_batch_size=50) as log:
        for first in range(0, old, 1_000):
            await log.log_events(
                {
                    "event_type": "system.info",
                    "source": "prune-test",
                    "data": {"i": i},
                    "timestamp": start + timedelta(seconds=i),
                }
                for i in range(first, first + 1_000)
            )
        await log.log_events(
            {"event_type": "system.info", "source": "prune-test", "data": {"i": old + i}}
            for i in range(new)
        )
        pruner = asyncio.create_task(log.prune_events(30))
        for _ in range(10_000):  # until its first batches are gone: then it is mid-way
            if await log.count_events(until=cutoff) < old:
                break
            await asyncio.sleep(0.001)
        pruner.cancel()
        assert isinstance(await outcome(pruner), asyncio.CancelledError)
        await log.flush()  # a batch already handed to the writer has finished

        remaining = await log.count_events(until=cutoff)
        assert 0 < remaining < old  # really cancelled mid-way
        assert await log.count_events(since=cutoff) == new
        assert await log.count_events() == remaining + new
        survivors = await all_events(log, until=cutoff)
        # Oldest first, whole batches: what is left is the newest ``remaining`` old events.
        assert [e.data["i"] for e in survivors if e.data] == list(range(old - remaining, old))
        for event in survivors:
            assert_whole(event)

        assert await log.prune_events(30) == remaining  # a later prune finishes the job
        assert await log.count_events(until=cutoff) == 0
        assert await log.count_events() == new
        await assert_writer_works(log)


async def collect(follower: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in follower:
        into.append(event)


async def wait_until(condition: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def stopped(task: asyncio.Task[Any], seconds: float = 10) -> bool:
    """True when ``task`` has ended within ``seconds`` (never waits longer)."""
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return task in done


async def test_a_cancelled_follow_consumer_does_not_break_the_logger(backend_url: str) -> None:
    rng = random.Random(SEED + 2)
    # In-memory SQLite loses the whole database when a read is cancelled mid-query
    # (test_cancelling_a_reader_keeps_the_in_memory_database): there the follower does
    # not poll, so the cancellations below land while it waits, not while it reads.
    poll_interval = 60.0 if backend_url == MEMORY_URL else 0.02
    async with EventLogger.open(backend_url, poll_interval=poll_interval) as log:
        for round_ in range(8):
            got: list[Event] = []
            source = f"follow-{round_}"
            follower = log.follow(source=source)
            consumer = asyncio.create_task(collect(follower, got))
            await started(follower)
            written = [
                await log.log_event("task.started", source, data={"n": n})
                for n in range(rng.randint(0, 4))
            ]
            await wait_until(lambda: len(got) >= len(written))  # noqa: B023
            assert got == written  # in commit order, nothing repeated
            await asyncio.sleep(0.05)  # late wake-ups (PostgreSQL NOTIFY) have been handled
            # A random moment, though not the one when a commit wakes the consumer
            # (test_a_follow_consumer_cancelled_as_a_commit_wakes_it_stops).
            await cancel_at(consumer, random_moment(rng))
            assert await stopped(consumer)
            assert consumer.cancelled()

        # The logger still works, and so does a new follower.
        got = []
        follower = log.follow(source="follow-after")
        consumer = asyncio.create_task(collect(follower, got))
        await started(follower)
        after = [await log.log_event("task.completed", "follow-after") for _ in range(3)]
        await wait_until(lambda: len(got) >= len(after))
        assert got == after
        await assert_writer_works(log)

        # close() ends the live follower after what was committed before it, with the
        # cancelled followers (never closed by their consumers) still registered.
        last = await log.log_event("task.completed", "follow-after")
        await asyncio.wait_for(log.close(), 30)
        assert await stopped(consumer)
        assert got == [*after, last]


# -- regressions of bugs this suite found ------------------------------------------------------


async def test_cancelling_a_reader_keeps_the_in_memory_database(backend_url: str) -> None:
    # A read cancelled mid-query used to make SQLAlchemy drop the one StaticPool
    # connection, and the in-memory database with it.
    async with EventLogger.open(backend_url) as log:
        event = await log.log_event("task.created", "s")
        reader = asyncio.create_task(log.count_events())
        await asyncio.sleep(0)  # the read is in flight
        reader.cancel()
        await outcome(reader)
        assert await log.count_events() == 1
        assert await log.get_event(event.id) == event


async def test_a_follow_consumer_cancelled_as_a_commit_wakes_it_stops(backend_url: str) -> None:
    # asyncio.wait_for on Python 3.11 used to swallow this cancellation.
    if backend_url.startswith("postgresql"):
        pytest.skip(
            "on PostgreSQL a NOTIFY wakes the consumer before log_event returns, so this "
            "moment cannot be arranged through the API (the code path is the same)"
        )
    async with EventLogger.open(backend_url, poll_interval=5) as log:
        got: list[Event] = []
        follower = log.follow()
        consumer = asyncio.create_task(collect(follower, got))
        await started(follower)
        await log.log_event("task.created", "warm-up")
        await wait_until(lambda: len(got) == 1)
        await asyncio.sleep(0.2)  # it has looked for more and waits for a commit
        await log.log_event("task.created", "s")  # the commit wakes it...
        consumer.cancel()  # ...and it is cancelled before it runs again
        try:
            assert await stopped(consumer, 2)
            assert consumer.cancelled()
        finally:
            consumer.cancel()
            await stopped(consumer, 2)
