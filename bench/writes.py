"""Write scenarios, each run in a fresh subprocess so its peak RSS is its own.

The parent calls :func:`run_scenario`; the child is ``python -m bench.writes
SCENARIO URL N OUT`` and writes one JSON object to ``OUT``. Scenarios:

``raw``
    The driver's limit for the backend. SQLite: stdlib ``sqlite3`` ``executemany``
    of N rows in one transaction, under the logger's pragmas (WAL,
    ``synchronous=NORMAL``). PostgreSQL: asyncpg ``copy_records_to_table``.
    Ids (``event_log._ids.new_id``), timestamps and JSON are made in Python inside
    the timed region.
``raw_batches``
    PostgreSQL only: the same ``copy_records_to_table``, 1,000 rows at a time,
    each in its own transaction (the driver's limit for the shape of
    ``log_events_batches``: a commit per 1,000 events), with no sequence numbers
    reserved and nothing validated.
``log_event_concurrent``
    ``log_event`` awaited by 100 tasks, N events in total.
``log_event_sequential``
    ``log_event`` awaited one after another by one task (latency bound).
``emit_flush``
    ``emit()`` of N events (yielding to the loop every 1,000), then ``flush()``.
``log_events_batches``
    ``log_events`` in batches of 1,000, awaited one after another.
``log_events_large_batches``
    The same in batches of 10,000 (an import's bulk load), PostgreSQL only.
``processes_4x25``
    ``log_event`` awaited by 25 tasks in each of 4 processes at once (each with
    its own logger on the same database), N events in total. The processes
    start, open their loggers and log a warm-up event first; the clock runs
    from the moment all of them are told to go until the last one is done.
``emit_memory``
    The memory check: N ``emit()`` calls with no ``flush()`` in between, only
    ``await asyncio.sleep(0)`` every 1,000, then one ``flush()``.

Each logger scenario opens the logger (``migrate=False``: the parent created
the schema) and logs one warm-up event before its timed region, so connecting
is not measured; the table is checked to hold every event afterwards. Peak RSS
growth is ``ru_maxrss`` at the end minus ``ru_maxrss`` once the imports are
done (inputs are made on the fly, so they do not inflate it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import traceback
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

# Imported here, before the RSS baseline, so the drivers and dialects the
# scenarios load lazily do not count as the scenario's memory.
import aiosqlite  # noqa: F401
import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.dialects.postgresql.asyncpg
import sqlalchemy.dialects.sqlite.aiosqlite  # noqa: F401
from sqlalchemy.engine import make_url

from event_log import EventLogger, InvalidEventError, LoggerClosedError
from event_log._ids import new_id
from event_log.backends.sqlite._types import format_utc

from .blocking import BLOCKING_SCENARIOS
from .common import (
    DATA_DIR,
    RAW_COLUMNS,
    RAW_INSERT_SQL,
    ROOT,
    SQLITE_PRAGMAS,
    as_dict,
    make_input,
    peak_rss_mb,
    sequential_events,
    summarize_ms,
)
from .postgres import asyncpg_dsn

__all__ = [
    "BATCH_SIZE",
    "CONCURRENT_TASKS",
    "LARGE_BATCH_SIZE",
    "SCENARIOS",
    "ScenarioError",
    "emit_events",
    "run_scenario",
    "sequential_events",
]

CONCURRENT_TASKS = 100
BATCH_SIZE = 1_000
LARGE_BATCH_SIZE = 10_000
YIELD_EVERY = 1_000
# How long emit() may keep refusing events (backpressure) before we call it stuck.
_MAX_REJECTION_S = 60.0

Result = dict[str, Any]


class ScenarioError(RuntimeError):
    """A benchmark subprocess failed; the message carries the end of its stderr."""


# -- the raw limits ---------------------------------------------------------------------


def _raw_rows(n: int, timestamp: Callable[[], Any], first: int = 0) -> Iterator[tuple[Any, ...]]:
    for i in range(first, first + n):
        e = make_input(i)
        yield (
            new_id(),
            e.event_type,
            e.source,
            e.task_id,
            e.agent_id,
            json.dumps(e.data),
            timestamp(),
            i + 1,
        )


async def raw(url: str, n: int) -> Result:
    """The backend's raw limit (see the module docstring)."""
    if make_url(url).get_backend_name() == "sqlite":
        return _raw_sqlite(url, n)
    return await _raw_postgres(url, n)


def _raw_sqlite(url: str, n: int) -> Result:
    path = make_url(url).database
    assert path, "the raw limit needs a file database"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        start = perf_counter()
        conn.execute("BEGIN")
        conn.executemany(RAW_INSERT_SQL, _raw_rows(n, lambda: format_utc(datetime.now(UTC))))
        conn.execute("COMMIT")
        seconds = perf_counter() - start
        (count,) = conn.execute("SELECT count(*) FROM event_log").fetchone()
    finally:
        conn.close()
    return {"events": n, "seconds": seconds, "rows_in_table": count, "expected_rows": n}


async def _raw_postgres(url: str, n: int) -> Result:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        start = perf_counter()
        await conn.copy_records_to_table(
            "event_log", records=_raw_rows(n, lambda: datetime.now(UTC)), columns=RAW_COLUMNS
        )
        seconds = perf_counter() - start
        count = await conn.fetchval("SELECT count(*) FROM event_log")
    finally:
        await conn.close()
    return {"events": n, "seconds": seconds, "rows_in_table": count, "expected_rows": n}


async def raw_batches(url: str, n: int) -> Result:
    """PostgreSQL: ``copy_records_to_table`` of 1,000 rows at a time, a transaction each."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        start = perf_counter()
        for first in range(0, n, BATCH_SIZE):
            rows = _raw_rows(min(BATCH_SIZE, n - first), lambda: datetime.now(UTC), first)
            await conn.copy_records_to_table("event_log", records=rows, columns=RAW_COLUMNS)
        seconds = perf_counter() - start
        count = await conn.fetchval("SELECT count(*) FROM event_log")
    finally:
        await conn.close()
    return {"events": n, "seconds": seconds, "rows_in_table": count, "expected_rows": n}


# -- through the logger -----------------------------------------------------------------


async def _with_logger(
    url: str, n: int, body: Callable[[EventLogger], Awaitable[Result]]
) -> Result:
    """Open the logger, log a warm-up event, run ``body`` (the timed part), check the table."""
    async with EventLogger.open(url, migrate=False) as log:
        warm = make_input(0)
        await log.log_event(warm.event_type, warm.source, task_id="warm-up", data=warm.data)
        result = await body(log)
        await log.flush()
        result["rows_in_table"] = await log.count_events()
        result["expected_rows"] = result["events"] + 1
        result["stats"] = asdict(log.stats)
    return result


def _latency_result(n: int, seconds: float, latencies: array[float]) -> Result:
    return {"events": n, "seconds": seconds, **summarize_ms(latencies)}


async def log_event_concurrent(url: str, n: int) -> Result:
    """``log_event`` awaited by 100 tasks at once (the coordinator case)."""
    per_task, extra = divmod(n, CONCURRENT_TASKS)

    async def body(log: EventLogger) -> Result:
        latencies: array[float] = array("d")

        async def worker(k: int) -> None:
            count = per_task + (1 if k < extra else 0)
            for j in range(count):
                e = make_input(j * CONCURRENT_TASKS + k)
                t0 = perf_counter()
                await log.log_event(
                    e.event_type, e.source, task_id=e.task_id, agent_id=e.agent_id, data=e.data
                )
                latencies.append(perf_counter() - t0)

        start = perf_counter()
        await asyncio.gather(*(worker(k) for k in range(CONCURRENT_TASKS)))
        return _latency_result(n, perf_counter() - start, latencies)

    return await _with_logger(url, n, body)


async def log_event_sequential(url: str, n: int) -> Result:
    """``log_event`` awaited one after another by a single task, N/10 events."""
    count = sequential_events(n)

    async def body(log: EventLogger) -> Result:
        latencies: array[float] = array("d")
        start = perf_counter()
        for i in range(count):
            e = make_input(i)
            t0 = perf_counter()
            await log.log_event(
                e.event_type, e.source, task_id=e.task_id, agent_id=e.agent_id, data=e.data
            )
            latencies.append(perf_counter() - t0)
        return _latency_result(count, perf_counter() - start, latencies)

    return await _with_logger(url, count, body)


async def emit_events(log: EventLogger, n: int, latencies: array[float] | None) -> int:
    """``emit()`` N events, yielding to the loop every 1,000; return how many were refused.

    The bounded queue may make ``emit`` refuse an event when it is full;
    then this yields briefly and retries, so every event is eventually queued. A
    validation error or a closed logger is a real failure and propagates.
    """
    rejected = 0
    refused_since: float | None = None
    i = 0
    while i < n:
        e = make_input(i)
        t0 = perf_counter()
        try:
            log.emit(e.event_type, e.source, task_id=e.task_id, agent_id=e.agent_id, data=e.data)
        except (InvalidEventError, LoggerClosedError):
            raise
        except Exception:  # backpressure: the queue is full
            rejected += 1
            now = perf_counter()
            refused_since = refused_since or now
            if now - refused_since > _MAX_REJECTION_S:
                raise
            await asyncio.sleep(0.001)
            continue
        if latencies is not None:
            latencies.append(perf_counter() - t0)
        refused_since = None
        i += 1
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return rejected


async def emit_flush(url: str, n: int) -> Result:
    """``emit()`` of N events, then ``flush()``; latency is that of the emit call."""

    async def body(log: EventLogger) -> Result:
        latencies: array[float] = array("d")
        start = perf_counter()
        rejected = await emit_events(log, n, latencies)
        emitted = perf_counter() - start
        await log.flush()
        result = _latency_result(n, perf_counter() - start, latencies)
        result.update(emit_seconds=emitted, rejected=rejected)
        return result

    return await _with_logger(url, n, body)


async def log_events_batches(url: str, n: int, batch_size: int = BATCH_SIZE) -> Result:
    """``log_events`` in batches of ``batch_size``, awaited one after another."""

    async def body(log: EventLogger) -> Result:
        latencies: array[float] = array("d")
        start = perf_counter()
        for first in range(0, n, batch_size):
            batch = [as_dict(make_input(i)) for i in range(first, min(first + batch_size, n))]
            t0 = perf_counter()
            await log.log_events(batch)
            latencies.append(perf_counter() - t0)
        return _latency_result(n, perf_counter() - start, latencies)

    return await _with_logger(url, n, body)


async def log_events_large_batches(url: str, n: int) -> Result:
    """``log_events`` in batches of 10,000, awaited one after another."""
    return await log_events_batches(url, n, LARGE_BATCH_SIZE)


async def emit_memory(url: str, n: int) -> Result:
    """N ``emit()`` calls with no flush in between (a yield every 1,000), then ``flush()``."""

    async def body(log: EventLogger) -> Result:
        start = perf_counter()
        rejected = await emit_events(log, n, None)
        emitted = perf_counter() - start
        queued_after_emit = log.stats.queued
        await log.flush()
        return {
            "events": n,
            "seconds": perf_counter() - start,
            "emit_seconds": emitted,
            "rejected": rejected,
            "queued_after_emit": queued_after_emit,
        }

    return await _with_logger(url, n, body)


PROCESSES = 4
TASKS_PER_PROCESS = 25


async def _process_worker(url: str, n: int) -> None:
    """One of the processes of ``processes_4x25``: ready, wait for go, log, report."""
    per_task, extra = divmod(n, TASKS_PER_PROCESS)
    async with EventLogger.open(url, migrate=False) as log:
        warm = make_input(0)
        await log.log_event(warm.event_type, warm.source, task_id="warm-up", data=warm.data)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def worker(k: int) -> None:
            for j in range(per_task + (1 if k < extra else 0)):
                e = make_input(j * TASKS_PER_PROCESS + k)
                await log.log_event(
                    e.event_type, e.source, task_id=e.task_id, agent_id=e.agent_id, data=e.data
                )

        await asyncio.gather(*(worker(k) for k in range(TASKS_PER_PROCESS)))
        await log.flush()
    print("done", flush=True)


async def processes_4x25(url: str, n: int) -> Result:
    """``log_event`` from 25 tasks in each of 4 processes on the same database."""
    counts = [n // PROCESSES + (1 if p < n % PROCESSES else 0) for p in range(PROCESSES)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.writes",
            "worker",
            url,
            str(count),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for count in counts
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if await proc.stdout.readline() != b"ready\n":
                raise RuntimeError("a writer process did not start")
        start = perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = await asyncio.gather(*(proc.communicate() for proc in procs))
        seconds = perf_counter() - start
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    if any(
        proc.returncode != 0 or out.strip() != b"done"
        for proc, (out, _) in zip(procs, outputs, strict=True)
    ):
        raise RuntimeError("a writer process failed")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        count = await conn.fetchval("SELECT count(*) FROM event_log")
    finally:
        await conn.close()
    return {
        "events": n,
        "seconds": seconds,
        "rows_in_table": count,
        "expected_rows": n + PROCESSES,  # and a warm-up event per process
        "processes": PROCESSES,
        "tasks_per_process": TASKS_PER_PROCESS,
    }


SCENARIOS: dict[str, Callable[[str, int], Coroutine[Any, Any, Result]]] = {
    **BLOCKING_SCENARIOS,
    "raw": raw,
    "raw_batches": raw_batches,
    "log_event_concurrent": log_event_concurrent,
    "log_event_sequential": log_event_sequential,
    "emit_flush": emit_flush,
    "log_events_batches": log_events_batches,
    "log_events_large_batches": log_events_large_batches,
    "emit_memory": emit_memory,
    "processes_4x25": processes_4x25,
}


# -- the parent's side ------------------------------------------------------------------


def run_scenario(scenario: str, url: str, n: int, *, timeout: float) -> Result:
    """Run one scenario in a fresh ``python -m bench.writes`` process; return its result."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="result-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "bench.writes", scenario, url, str(n), str(out)]
        try:
            proc = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise ScenarioError(f"{scenario} did not finish within {timeout:.0f} s") from None
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise ScenarioError(f"{scenario} failed (exit {proc.returncode}): {tail}")
        result: Result = json.loads(out.read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    """The child: run one scenario and write its JSON result."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["worker"]:  # a process of processes_4x25
        asyncio.run(_process_worker(args_in[1], int(args_in[2])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.writes", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    baseline = peak_rss_mb()
    try:
        result = asyncio.run(SCENARIOS[args.scenario](args.url, args.n))
    except Exception:
        traceback.print_exc()
        return 1
    peak = peak_rss_mb()
    result.update(rss_baseline_mb=baseline, rss_peak_mb=peak, rss_growth_mb=peak - baseline)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
