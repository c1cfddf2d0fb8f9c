"""``prune_events`` of half the cached database while 20 tasks keep logging.

The cached database is checkpointed and copied to a scratch file first, so the
cache stays intact. The cutoff is the middle of the data's 30 days
(``older_than_days = 15 + the database's age in days``), so about half the rows
go. Twenty tasks call ``log_event`` back to back (no pause: the worst case for
a caller stuck behind a prune batch) from before the prune starts until it
returns; the latencies of the calls that started during the prune are
reported.

Each prune batch is timed where it runs, whichever way the logger sends it:

- through its SQLAlchemy engine: ``before_cursor_execute`` /
  ``after_cursor_execute`` listeners time each DELETE statement (public
  SQLAlchemy API; the time seen from the event loop);
- through a stdlib ``sqlite3`` connection of its own (the logger's SQLite file
  sink does that): while the prune runs, ``sqlite3.connect`` hands out a
  :class:`sqlite3.Connection` subclass (its public ``factory`` argument) that
  times, on the thread running it, each write transaction from the moment
  ``BEGIN IMMEDIATE`` has the write lock to the end of its ``COMMIT``: the time
  the step holds the lock. Transactions are told apart by their first
  statement: DELETE (a prune batch) or ``PRAGMA incremental_vacuum`` (a reclaim
  step).

Whichever saw the DELETEs is reported (``batch_timing``); when neither did, the
batch columns are empty and the note says so rather than showing a made-up zero.

``prune_events`` hands the freed pages back (``reclaim_space``) before it
returns. The file's size before the prune and after the logger closes (its last
connection checkpoints the WAL, which is when the file is truncated) gives the
shrink; the longest prune batch or reclaim step is the longest the write lock
was held by the whole path.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy import event

from event_log import EventLogger

from .common import make_input, remove_sqlite_files, sqlite_url, summarize_ms
from .dataset import SPAN_DAYS, Dataset

__all__ = ["WRITERS", "run_prune"]

WRITERS = 20
_SETTLE_S = 0.2  # let the writers reach their stride before the prune starts


def _copy_database(source: Path, target: Path) -> None:
    remove_sqlite_files(target)
    conn = sqlite3.connect(source)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    shutil.copyfile(source, target)


async def _prune_under_load(
    log: EventLogger, older_than_days: float, latencies: array[float]
) -> tuple[int, float, int, int]:
    """Prune while 20 tasks log; return (deleted, seconds, rows remaining, calls during)."""
    stop = asyncio.Event()
    pruning = False
    logged = 0

    async def writer(k: int) -> None:
        nonlocal logged
        i = 0
        while not stop.is_set():
            e = make_input(k * 10_000_000 + i)
            during = pruning
            t0 = perf_counter()
            await log.log_event(
                e.event_type, e.source, task_id=e.task_id, agent_id=e.agent_id, data=e.data
            )
            if during:
                latencies.append(perf_counter() - t0)
                logged += 1
            i += 1

    writers = [asyncio.create_task(writer(k)) for k in range(WRITERS)]
    try:
        await asyncio.sleep(_SETTLE_S)
        pruning = True
        start = perf_counter()
        deleted = await log.prune_events(older_than_days)
        seconds = perf_counter() - start
        pruning = False
    finally:
        stop.set()
        await asyncio.gather(*writers)
    return deleted, seconds, await log.count_events(), logged


def _is(statement: str, keyword: str) -> bool:
    return statement.lstrip()[: len(keyword)].upper() == keyword


_STEP_KINDS = {"DELETE": "delete", "PRAGMA INCREMENTAL_VACUUM": "reclaim"}


@contextmanager
def _time_sqlite3_transactions(durations: dict[str, list[float]]) -> Iterator[None]:
    """Time, per kind, the write transactions of every stdlib ``sqlite3`` connection opened
    meanwhile, from the lock (``BEGIN IMMEDIATE`` returned) to the end of ``COMMIT``."""

    class TimedConnection(sqlite3.Connection):
        _bench_t0: float | None = None
        _bench_kind: str | None = None

        def execute(self, sql: str, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
            cursor = super().execute(sql, *args, **kwargs)
            if _is(sql, "BEGIN IMMEDIATE"):
                self._bench_t0, self._bench_kind = perf_counter(), None
            elif self._bench_t0 is not None and self._bench_kind is None:
                self._bench_kind = next(
                    (kind for head, kind in _STEP_KINDS.items() if _is(sql, head)), "other"
                )
            if self._bench_t0 is not None and _is(sql, "COMMIT"):
                durations.setdefault(self._bench_kind or "other", []).append(
                    perf_counter() - self._bench_t0
                )
                self._bench_t0 = None
            return cursor

    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", TimedConnection)
        conn: sqlite3.Connection = original(*args, **kwargs)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield
    finally:
        sqlite3.connect = original


async def run_prune(dataset: Dataset, scratch: Path) -> dict[str, Any]:
    """Copy the dataset to ``scratch``, prune half of it under load, return the measurements."""
    _copy_database(dataset.path, scratch)
    size_before = _file_bytes(scratch)
    older_than_days = SPAN_DAYS / 2 + dataset.age() / timedelta(days=1)
    engine_batches: list[float] = []
    driver_steps: dict[str, list[float]] = {}
    latencies: array[float] = array("d")
    try:
        with _time_sqlite3_transactions(driver_steps):
            async with EventLogger.open(sqlite_url(scratch), migrate=False) as log:
                engine = log.engine.sync_engine

                @event.listens_for(engine, "before_cursor_execute")
                def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                    if _is(statement, "DELETE"):
                        conn.info["bench_delete_t0"] = perf_counter()

                @event.listens_for(engine, "after_cursor_execute")
                def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                    t0 = conn.info.pop("bench_delete_t0", None)
                    if t0 is not None:
                        engine_batches.append(perf_counter() - t0)

                deleted, seconds, remaining, logged = await _prune_under_load(
                    log, older_than_days, latencies
                )
        size_after = _file_bytes(scratch)
    finally:
        remove_sqlite_files(scratch)
    driver_batches = driver_steps.get("delete", [])
    reclaim_steps = driver_steps.get("reclaim", [])
    if engine_batches:
        batch_times, timing = engine_batches, "SQLAlchemy cursor events (DELETE statement)"
    elif driver_batches:
        batch_times, timing = driver_batches, "sqlite3 connection (DELETE to COMMIT)"
    else:
        batch_times, timing = [], "not observable: no DELETE seen by either hook"

    lat = summarize_ms(latencies)
    return {
        "rows_before": dataset.rows,
        "deleted": deleted,
        "remaining": remaining,
        "seconds": seconds,
        "batches": len(batch_times),
        "max_batch_ms": max(batch_times) * 1000 if batch_times else float("nan"),
        "p50_batch_ms": summarize_ms(batch_times)["p50_ms"],
        "log_event_calls": logged,
        "log_event_p50_ms": lat["p50_ms"],
        "log_event_p99_ms": lat["p99_ms"],
        "log_event_max_ms": lat["max_ms"],
        "writers": WRITERS,
        "batch_timing": timing,
        "size_before_mb": size_before / 2**20,
        "size_after_mb": size_after / 2**20,
        "shrink_pct": 100 * (1 - size_after / size_before),
        "reclaim_steps": len(reclaim_steps),
        "max_reclaim_step_ms": max(reclaim_steps) * 1000 if reclaim_steps else float("nan"),
        "max_step_ms": max([*batch_times, *reclaim_steps]) * 1000
        if batch_times or reclaim_steps
        else float("nan"),
    }


def _file_bytes(path: Path) -> int:
    """The database file and its WAL: what the database takes on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
