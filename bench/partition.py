"""PostgreSQL: ``prune_events`` on a table partitioned by day vs batched DELETE on a plain one.

The same ``rows`` events, spread evenly over the last ``SPAN_DAYS`` days, go
into a plain ``event_log`` and then (after the tables are dropped) into one
partitioned by day (``upgrade(url, partition="day")``, partitions made for
the data's days). Each is pruned with ``prune_events(older_than_days=15)``,
about half the rows, and timed from the call to its return. On the
partitioned table the whole days before the cutoff are detached, counted and
dropped; only the boundary day's old rows are deleted in batches.

The size is a parameter (``--partition-rows``): quick mode is small so CI
stays fast; a 10M-row run is ``--partition-rows 10000000``.
"""

from __future__ import annotations

from datetime import timedelta
from time import perf_counter
from typing import Any

from sqlalchemy import text

import event_log
from event_log import EventLogger
from event_log._engine import create_engine, resolve_url

from .common import as_dict, make_input, utc_now

__all__ = ["KEEP_DAYS", "SPAN_DAYS", "run_partition_prune"]

SPAN_DAYS = 30
KEEP_DAYS = 15
_BATCH = 2_000  # rows per log_events call (COPY in the numbering transaction)
_GAP = timedelta(minutes=10)


async def _fill(url: str, rows: int) -> None:
    now = utc_now()
    step = timedelta(days=SPAN_DAYS) / rows
    cutoff = now - timedelta(days=KEEP_DAYS)
    async with EventLogger.open(url, partitions_ahead=1) as log:
        for first in range(0, rows, _BATCH):
            batch = []
            for i in range(first, min(rows, first + _BATCH)):
                event = as_dict(make_input(i))
                when = now - timedelta(days=SPAN_DAYS) + step * i
                if abs(when - cutoff) < _GAP:  # no row near the cutoff: both prunes agree
                    when -= 2 * _GAP
                event["timestamp"] = when
                batch.append(event)
            await log.log_events(batch)


async def _reset(url: str) -> None:
    engine = create_engine(resolve_url(url))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS event_log, event_log_sequence"))
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        await engine.dispose()


async def _prune(url: str) -> tuple[int, float]:
    async with EventLogger.open(url, migrate=False, partitions_ahead=1) as log:
        started = perf_counter()
        deleted = await log.prune_events(KEEP_DAYS)
        return deleted, perf_counter() - started


async def _partitions(url: str) -> set[str]:
    engine = create_engine(resolve_url(url))
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT inhrelid::regclass::text FROM pg_inherits "
                    "WHERE inhparent = 'event_log'::regclass"
                )
            )
            return {str(name) for (name,) in found}
    finally:
        await engine.dispose()


async def run_partition_prune(url: str, rows: int) -> dict[str, Any]:
    """Both prunes in the (empty) database at ``url``; their metrics."""
    await _reset(url)
    await event_log.upgrade(url)
    await _fill(url, rows)
    deleted_plain, delete_seconds = await _prune(url)

    await _reset(url)
    await event_log.upgrade(url)
    await _fill(url, rows)
    # Converting a filled table makes a partition per day of data (the
    # migration path of an existing table); its time is reported too.
    started = perf_counter()
    await event_log.upgrade(url, partition="day", partition_ahead=1)
    convert_seconds = perf_counter() - started
    before = await _partitions(url)
    deleted, seconds = await _prune(url)
    dropped = len(before - await _partitions(url))
    if deleted != deleted_plain:
        raise RuntimeError(
            f"the partitioned prune removed {deleted:,} rows, the batched one {deleted_plain:,}"
        )
    return {
        "rows": rows,
        "deleted": deleted,
        "seconds": seconds,
        "delete_seconds": delete_seconds,
        "speedup": delete_seconds / seconds if seconds else float("nan"),
        "partitions_dropped": dropped,
        "convert_seconds": convert_seconds,
    }
