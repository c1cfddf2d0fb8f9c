"""Blocking callers: ``event_log.sync.log_event`` against the original module's way.

Both log the same N/10 events (as the sequential ``log_event`` row), one call at a
time, from one thread and from 8 threads at once, into an SQLite file of their own:

``sync_sequential`` / ``sync_threads``
    ``event_log.sync.log_event`` (the module-level function over the default
    logger, ``configure``'d to the scenario's file), returning once the event is
    committed.
``original_sequential`` / ``original_threads``
    The original system's write path (:mod:`bench.original`): a connection, its
    DDL, an INSERT and a commit per call, under SQLite's defaults.

Like every write scenario these run in a fresh subprocess (``bench.writes``
dispatches to them) and check the table holds every event afterwards.
"""

from __future__ import annotations

import sqlite3
import threading
from array import array
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

from sqlalchemy.engine import make_url

from . import original
from .common import EventInput, make_input, remove_sqlite_files, sequential_events, summarize_ms

__all__ = ["BLOCKING_SCENARIOS", "THREADS"]

THREADS = 8

Result = dict[str, Any]
LogOne = Callable[[EventInput], object]


def _in_threads(n: int, threads: int, log_one: LogOne) -> Result:
    """``log_one`` for N inputs, split over ``threads`` threads started together."""
    latencies: array[float] = array("d")
    lock = threading.Lock()
    go = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def worker(k: int) -> None:
        mine: array[float] = array("d")
        go.wait()
        try:
            for i in range(k, n, threads):
                t0 = perf_counter()
                log_one(make_input(i))
                mine.append(perf_counter() - t0)
        except BaseException as exc:  # reported by the parent, after the join
            failures.append(exc)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for thread in workers:
        thread.start()
    go.wait()
    start = perf_counter()
    for thread in workers:
        thread.join()
    seconds = perf_counter() - start
    if failures:
        raise failures[0]
    return {"events": n, "seconds": seconds, "threads": threads, **summarize_ms(latencies)}


def _sync(url: str, n: int, threads: int) -> Result:
    from event_log import sync

    n = sequential_events(n)
    sync.configure(url, migrate=False)
    try:
        warm = make_input(0)
        sync.log_event(warm.event_type, warm.source, "warm-up", None, warm.data)

        def log_one(e: EventInput) -> object:
            return sync.log_event(e.event_type, e.source, e.task_id, e.agent_id, e.data)

        result = _in_threads(n, threads, log_one)
        result["rows_in_table"] = _count(url)
        result["expected_rows"] = n + 1
    finally:
        sync.close()
    return result


def _original(url: str, n: int, threads: int) -> Result:
    n = sequential_events(n)
    path = make_url(url).database
    assert path, "the original module writes to a file"
    fresh = Path(f"{path}.original")  # its own database, made by its own DDL
    remove_sqlite_files(fresh)

    def log_one(e: EventInput) -> object:
        return original.log_event(
            fresh, e.event_type, e.source, e.task_id, e.agent_id, e.data, naive=True
        )

    result = _in_threads(n, threads, log_one)
    result["rows_in_table"] = _count(f"sqlite:///{fresh}")
    result["expected_rows"] = n
    return result


def _count(url: str) -> int:
    conn = sqlite3.connect(str(make_url(url).database))
    try:
        (count,) = conn.execute("SELECT count(*) FROM event_log").fetchone()
    finally:
        conn.close()
    return int(count)


async def sync_sequential(url: str, n: int) -> Result:
    """``event_log.sync.log_event``, one call after another from one thread."""
    return _sync(url, n, 1)


async def sync_threads(url: str, n: int) -> Result:
    """``event_log.sync.log_event`` from 8 threads at once."""
    return _sync(url, n, THREADS)


async def original_sequential(url: str, n: int) -> Result:
    """The original module's way, one call after another."""
    return _original(url, n, 1)


async def original_threads(url: str, n: int) -> Result:
    """The original module's way, from 8 threads at once."""
    return _original(url, n, THREADS)


BLOCKING_SCENARIOS = {
    "sync_sequential": sync_sequential,
    "sync_threads": sync_threads,
    "original_sequential": original_sequential,
    "original_threads": original_threads,
}
