"""Reads on the cached PostgreSQL database (``pg_dataset``), through the public API.

Each read is a :class:`ReadCase`; :func:`pg_read_cases` lists them in report
order, and the runner measures whatever it lists (``reads.measure``: warm-up, then ``runs``
timed calls; median and p99). To add a read, append a case there: a key (the
row id is ``reads.postgres.<key>``), a label, targets, and an async ``setup``
that gets the open logger, a raw asyncpg connection and the dataset, and
returns the call to time (``call(i)`` gets the run's index) and any metrics
to report beside the timings (e.g. ``matched``). A ``setup`` may also run
statements of its own first (create a partition, pick a cutoff); it runs once,
outside the timed region, in list order.

Time windows are shifted by the database's age, so "the last hour" always
means the newest hour of data: ``get_event_summary(60 + age in minutes)``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from event_log import EventLogger, EventType

from .pg_dataset import PgDataset
from .postgres import asyncpg_dsn
from .reads import measure
from .report import Target, below

__all__ = ["FILTER_TYPE", "ReadCase", "ReadContext", "pg_read_cases", "run_pg_reads"]

FILTER_TYPE = EventType.TASK_FAILED  # a selective filter (~0.07% of rows)
BIG_BID = ("bid_sats", ">", 800)  # bids are 50-900 sats: about one in nine
TOOL_FILTER = {"tool": "run_tests"}  # one tool of six

Call = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class ReadContext:
    """What a case's setup may use: the logger under test, the raw driver, the dataset."""

    log: EventLogger
    raw: Any  # an asyncpg connection to the same database
    dataset: PgDataset

    @property
    def last_hour_minutes(self) -> float:
        """``minutes`` that mean the newest hour of data (shifted by the database's age)."""
        return 60 + self.dataset.age() / timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ReadCase:
    key: str
    label: str
    targets: tuple[Target, ...]
    setup: Callable[[ReadContext], Awaitable[tuple[Call, dict[str, Any]]]]


async def _timeline(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    return (lambda i: ctx.log.list_events(limit=100)), {}


async def _summary(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    minutes = ctx.last_hour_minutes
    counts = await ctx.log.get_event_summary(minutes)
    return (lambda i: ctx.log.get_event_summary(minutes)), {
        "events_in_window": sum(counts.values())
    }


async def _keyset_page(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    depth = ctx.dataset.rows // 2
    at = await ctx.raw.fetchrow(
        'SELECT "timestamp", id FROM event_log ORDER BY "timestamp" DESC, id DESC '
        "LIMIT 1 OFFSET $1",
        depth - 1,
    )
    # The logger's own cursor just past the depth-th newest event.
    probe = await ctx.log.list_events(until=at["timestamp"] + timedelta(microseconds=1), limit=1)
    if not probe.events or probe.events[0].id != at["id"] or not probe.next_cursor:
        raise RuntimeError("could not position a cursor at the keyset depth")
    cursor = probe.next_cursor
    page = await ctx.log.list_events(limit=100, cursor=cursor)
    if len(page.events) != 100:
        raise RuntimeError("the keyset page is short")
    return (lambda i: ctx.log.list_events(limit=100, cursor=cursor)), {"depth": depth}


async def _data_where_page(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    """The issue's question, "which agent bid more than N sats?": the newest page of them."""

    def call(i: int) -> Awaitable[object]:
        return ctx.log.list_events(
            event_type=EventType.BID_SUBMITTED, data_where=[BIG_BID], limit=100
        )

    page = await ctx.log.list_events(
        event_type=EventType.BID_SUBMITTED, data_where=[BIG_BID], limit=100
    )
    if not page.events or any(e.data is None or e.data["bid_sats"] <= 800 for e in page.events):
        raise RuntimeError("the data_where page is empty or wrong")
    return call, {"matched": len(page.events)}


async def _data_contains_hour(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    """Containment over the newest hour: every row of the window has its data read."""
    since = datetime.now(UTC) - timedelta(minutes=ctx.last_hour_minutes)

    def call(i: int) -> Awaitable[int]:
        return ctx.log.count_events(since=since, data_contains=TOOL_FILTER)

    return call, {"matched": await call(0)}


async def _count_filtered(ctx: ReadContext) -> tuple[Call, dict[str, Any]]:
    matched = await ctx.log.count_events(event_type=FILTER_TYPE)
    return (lambda i: ctx.log.count_events(event_type=FILTER_TYPE)), {"matched": matched}


def pg_read_cases(rows: int) -> list[ReadCase]:
    """The PostgreSQL reads, in report order (append new cases here).

    Partition pruning against a batched delete has its own row (``bench.partition``):
    it changes the database, and this one is a cache.
    """
    return [
        ReadCase(
            "timeline",
            "list_events(limit=100), the newest page",
            (below("p50_ms", 5, "< 5 ms"),),
            _timeline,
        ),
        ReadCase(
            "summary",
            "get_event_summary() of the last hour",
            (below("p50_ms", 50, "< 50 ms"),),
            _summary,
        ),
        ReadCase(
            "keyset_page",
            f"list_events(limit=100, cursor) at depth {rows // 2:,}",
            (below("p50_ms", 5, "< 5 ms"),),
            _keyset_page,
        ),
        ReadCase(
            "count_filtered",
            f"count_events(event_type={FILTER_TYPE.value!r})",
            (below("p50_ms", 20, "< 20 ms"),),
            _count_filtered,
        ),
        ReadCase(
            "data_where_page",
            f"list_events(event_type='bid.submitted', data_where=[{BIG_BID!r}], limit=100)",
            (below("p50_ms", 20, "< 20 ms"),),
            _data_where_page,
        ),
        ReadCase(
            "data_contains_hour",
            f"count_events(since=1 hour ago, data_contains={TOOL_FILTER!r})",
            (below("p50_ms", 50, "< 50 ms"),),
            _data_contains_hour,
        ),
    ]


async def run_pg_reads(
    dataset: PgDataset, cases: list[ReadCase], *, runs: int
) -> dict[str, dict[str, Any] | Exception]:
    """Each case's metrics (or the exception that stopped it), keyed by the case's key."""
    results: dict[str, dict[str, Any] | Exception] = {}
    raw = await asyncpg.connect(asyncpg_dsn(dataset.url))
    try:
        async with EventLogger.open(dataset.url, migrate=False) as log:
            ctx = ReadContext(log, raw, dataset)
            for case in cases:
                try:
                    call, extra = await case.setup(ctx)
                    results[case.key] = {**await measure(runs, call), **extra}
                except Exception as exc:  # reported as an ERROR row; the others go on
                    results[case.key] = exc
    finally:
        await raw.close()
    return results
