"""Reads on the cached database through the public API, median and p99 of repeated runs.

Every query runs a few times unmeasured (warm-up), then ``runs`` times measured.
Queries that take an id cycle through the dataset's sample of tasks and its
agents, so each run reads different rows. Time windows are shifted by the
database's age, so "the last 60 minutes" always means the newest hour of data:
``get_event_summary(60 + age in minutes)``.

The keyset page at depth D (half the table; 500,000 of a million) needs a
cursor at that depth. It is computed cheaply instead of walking D/1000 pages:
the ``(timestamp, id)`` of the D-th newest row comes from raw SQL, a one-event
``list_events(until=that timestamp + 1 µs)`` page yields the logger's own
cursor just past it, and the measured call is ``list_events(limit=100,
cursor=...)``. Its first event is checked against the OFFSET query at the same
depth, which is measured beside it through stdlib ``sqlite3``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from time import perf_counter
from typing import Any

from event_log import EventLogger, EventType

from .common import summarize_ms
from .dataset import Dataset

__all__ = ["COMMON_TYPE", "FILTER_TYPE", "measure", "run_reads"]

WARM_UP = 3
FILTER_TYPE = EventType.TASK_FAILED  # a selective filter (~0.07% of rows)
COMMON_TYPE = EventType.TOOL_CALLED  # an unselective one (~43% of rows), for information

_OFFSET_SQL = (
    "SELECT id, event_type, source, task_id, agent_id, data, timestamp FROM event_log "
    "ORDER BY timestamp DESC, id DESC LIMIT 100 OFFSET ?"
)


async def measure(runs: int, call: Callable[[int], Awaitable[object]]) -> dict[str, Any]:
    """Warm up, then time ``runs`` calls; ``call(i)`` gets the run's index."""
    for i in range(WARM_UP):
        await call(i)
    times: list[float] = []
    for i in range(runs):
        t0 = perf_counter()
        await call(WARM_UP + i)
        times.append(perf_counter() - t0)
    return {"runs": runs, **summarize_ms(times)}


async def run_reads(dataset: Dataset, *, runs: int, offset_runs: int) -> dict[str, dict[str, Any]]:
    """Measure every read; return a result per read, keyed like the report's row ids."""
    depth = dataset.rows // 2
    minutes = 60 + dataset.age() / timedelta(minutes=1)
    tasks, agents = dataset.tasks, dataset.agents
    results: dict[str, dict[str, Any]] = {}

    raw = sqlite3.connect(dataset.path)
    try:
        ts_text, at_depth_id = raw.execute(
            "SELECT timestamp, id FROM event_log ORDER BY timestamp DESC, id DESC LIMIT 1 OFFSET ?",
            (depth - 1,),
        ).fetchone()
        offset_first_id = raw.execute(_OFFSET_SQL, (depth,)).fetchone()[0]

        async with EventLogger.open(dataset.url, migrate=False) as log:
            # The logger's own cursor just past the depth-th newest event.
            until = datetime.fromisoformat(ts_text) + timedelta(microseconds=1)
            probe = await log.list_events(until=until, limit=1)
            if not probe.events or probe.events[0].id != at_depth_id or not probe.next_cursor:
                raise RuntimeError("could not position a cursor at the keyset depth")
            cursor = probe.next_cursor
            page = await log.list_events(limit=100, cursor=cursor)
            if len(page.events) != 100 or page.events[0].id != offset_first_id:
                raise RuntimeError("the keyset page does not match the OFFSET page")

            timeline_sizes: list[int] = []

            async def timeline(i: int) -> None:
                events = await log.get_task_events(tasks[i % len(tasks)])
                timeline_sizes.append(len(events))

            results["timeline"] = await measure(runs, timeline)
            results["timeline"]["events_per_call"] = sum(timeline_sizes) / len(timeline_sizes)

            results["agent_latest"] = await measure(
                runs,
                lambda i: log.get_agent_events(agents[(i * 37) % len(agents)], limit=100),
            )
            summary = await log.get_event_summary(minutes)
            results["summary"] = await measure(runs, lambda i: log.get_event_summary(minutes))
            results["summary"]["events_in_window"] = sum(summary.values())
            results["keyset_page"] = await measure(
                runs, lambda i: log.list_events(limit=100, cursor=cursor)
            )
            results["keyset_page"]["depth"] = depth

            async def offset_page(i: int) -> None:
                raw.execute(_OFFSET_SQL, (depth,)).fetchall()

            results["offset_page"] = await measure(offset_runs, offset_page)
            results["offset_page"]["depth"] = depth
            for key, kind in (("count_filtered", FILTER_TYPE), ("count_common", COMMON_TYPE)):

                async def count(i: int, kind: str = kind) -> int:
                    return await log.count_events(event_type=kind)

                results[key] = await measure(runs, count)
                results[key]["matched"] = await log.count_events(event_type=kind)
    finally:
        raw.close()
    return results
