"""What the writers of ``python -m bench --peers`` share: the events, timing, errors, counts.

Every writer logs the events of :func:`bench.common.make_input` (the same types,
sources, task and agent ids and JSON payloads as every other write scenario),
each with an id from event-log's own generator (a UUIDv7, 36 characters), so
every table indexes keys of the same shape, made inside the timed region.

A writer returns a result mapping: ``events`` (attempted in the timed part),
``errors`` (calls that raised one of the errors a writer counts, such as
"database is locked" or a pool timeout: a result, not a crash), ``error_kinds``
(the first line of each kind's message and how often), ``seconds``, the
per-call latencies ``p50_ms`` / ``p99_ms`` / ``max_ms`` (a call is one event or
one batch), and ``rows_in_table`` / ``expected_rows`` (every stored event plus
the warm-up one each writer logs before its clock starts).
"""

from __future__ import annotations

import sqlite3
from array import array
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from event_log._ids import new_id

from .common import EventInput, make_input, summarize_ms

__all__ = [
    "CONCURRENT_TASKS",
    "PeerEvent",
    "Result",
    "Tally",
    "count_rows",
    "is_sqlite",
    "peer_event",
    "psycopg_params",
    "sqlite_path",
    "timed_calls",
]

CONCURRENT_TASKS = 100

Result = dict[str, Any]
PeerEvent = tuple[str, EventInput, datetime]
"""One event as a peer writes it: its id, its fields and its timestamp."""


def peer_event(i: int) -> PeerEvent:
    """The ``i``-th benchmark event with a fresh id and the current time."""
    return new_id(), make_input(i), datetime.now(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> str:
    """The file of an SQLite URL."""
    path = make_url(url).database
    if not path:
        raise ValueError(f"not an SQLite file URL: {url}")
    return path


def psycopg_params(url: str) -> dict[str, Any]:
    """psycopg's (and eventsourcing's) connection parameters for a PostgreSQL URL."""
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password or "",
        "dbname": parsed.database or "postgres",
    }


class Tally:
    """The errors a writer counts instead of raising, by the first line of their message."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def add(self, exc: BaseException, events: int = 1) -> None:
        """Count ``events`` events lost to ``exc`` (a failed batch loses all of its own)."""
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        self.kinds[first[:120]] += events

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def as_result(self) -> Result:
        return {"errors": self.count, "error_kinds": dict(self.kinds.most_common())}


def timed_calls(calls: int, call: Callable[[int], None]) -> Result:
    """``call(k)`` for k in 0..calls-1, one after another, each timed."""
    latencies: array[float] = array("d")
    start = perf_counter()
    for k in range(calls):
        t0 = perf_counter()
        call(k)
        latencies.append(perf_counter() - t0)
    return {"seconds": perf_counter() - start, **summarize_ms(latencies)}


async def count_rows(url: str, table: str) -> int:
    """How many rows ``table`` holds, read through a short-lived engine."""
    if is_sqlite(url):
        db = sqlite3.connect(sqlite_path(url))
        try:
            (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        finally:
            db.close()
        return int(count)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    finally:
        await engine.dispose()
