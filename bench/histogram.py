"""``get_event_histogram`` over a day holding the whole cached database.

The database is the read dataset's shape packed into one day
(``ensure_dataset(rows, span_days=1)``): a million rows in the day in a full
run. The measured call is the day in 5-minute buckets (288 of them), through
the public API; the same day split ``by="event_type"`` is measured beside it
for information. The first call's buckets are checked against a raw count of
the day, and the plan of the statement the logger issues is recorded (a
``before_cursor_execute`` listener runs ``EXPLAIN QUERY PLAN`` on it once):
``index`` is 1 when every access to ``event_log`` is an index search.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event

from event_log import EventLogger, HistogramGroup

from .dataset import Dataset
from .reads import measure

__all__ = ["EVERY", "run_histogram"]

EVERY = timedelta(minutes=5)


def _plan_uses_index(plan: list[str]) -> bool:
    touches = [line for line in plan if "event_log" in line]
    return bool(touches) and all(line.startswith("SEARCH event_log USING") for line in touches)


def day_window(dataset: Dataset) -> tuple[datetime, datetime]:
    """The measured window: the day ending just after the newest event."""
    until = dataset.built_at + timedelta(seconds=1)
    return until - timedelta(days=dataset.span_days), until


async def run_histogram(dataset: Dataset, *, runs: int) -> dict[str, dict[str, Any]]:
    """Measure the day's histogram, plain and by type; return a result for each."""
    since, until = day_window(dataset)
    raw = sqlite3.connect(dataset.path)
    try:
        expected = raw.execute(
            "SELECT count(*) FROM event_log WHERE timestamp >= ? AND timestamp < ?",
            (since.isoformat(timespec="microseconds"), until.isoformat(timespec="microseconds")),
        ).fetchone()[0]
    finally:
        raw.close()

    results: dict[str, dict[str, Any]] = {}
    async with EventLogger.open(dataset.url, migrate=False) as log:
        plan: list[str] = []

        def explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if not plan and statement.lstrip().upper().startswith("WITH"):
                cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
                plan.extend(str(row[-1]) for row in cursor.fetchall())

        engine = log.engine.sync_engine
        event.listen(engine, "before_cursor_execute", explain)
        buckets = await log.get_event_histogram(since=since, until=until, every=EVERY)
        event.remove(engine, "before_cursor_execute", explain)
        counted = sum(bucket.total for bucket in buckets)
        if counted != expected:
            raise RuntimeError(
                f"the histogram counted {counted:,} rows, the day holds {expected:,}"
            )

        def histogram(by: HistogramGroup | None) -> Any:
            return lambda i: log.get_event_histogram(since=since, until=until, every=EVERY, by=by)

        results["plain"] = await measure(runs, histogram(None))
        results["by_type"] = await measure(max(3, runs // 5), histogram("event_type"))
    for result in results.values():
        result.update(rows_in_day=expected, buckets=len(buckets))
    results["plain"]["index"] = 1 if _plan_uses_index(plan) else 0
    results["plain"]["plan"] = "; ".join(plan)
    return results
