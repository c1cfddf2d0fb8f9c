"""One writer process of ``python -m bench.processes``.

``python -m bench._process_worker MODE URL SECONDS TASKS INDEX`` connects,
writes its warm-up rows, prints ``ready``, waits for a line on stdin (the
parent's "go"), then writes for SECONDS from that moment on and prints one
JSON line: the events it wrote in the timed part, the seconds from "go" to
the end of its last write, and the warm-up rows it wrote before. A failure
ends it with exit status 1 and a traceback on stderr (the parent shows its
last line).

Modes (every event is ``bench.common.make_input`` of a running index, its
data stamped with ``time.time()`` under ``"t"`` as it is made, inside the
timed part, for raw rows and the logger's alike):

``raw_insert``
    TASKS tasks, each with its own asyncpg connection (autocommit), each
    awaiting one single-row ``INSERT`` after another.
``raw_insert_notify``
    The same, with ``pg_notify('event_log', '')`` in the same statement.
``log_event``
    One ``EventLogger`` (asyncpg URL, ``migrate=False``) shared by TASKS
    tasks, each awaiting ``log_event`` after ``log_event``.
``raw_copy_batches``
    One connection: ``copy_records_to_table`` of 1,000 rows at a time, each
    its own transaction (TASKS is ignored).
``log_events_batches``
    One logger: ``log_events`` of 1,000 events at a time, awaited one after
    another (TASKS is ignored).
``raw_copy_once``
    One connection: one ``copy_records_to_table`` whose rows are made until
    SECONDS have passed, then committed (TASKS is ignored).

The raw rows fill the seven columns the logger's events have (id, event_type,
source, task_id, agent_id, data, timestamp); every other column of the table
keeps its default.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from event_log import EventLogger
from event_log._ids import new_id

from .common import COLUMNS, make_input
from .postgres import asyncpg_dsn

__all__ = ["BATCH_SIZE", "MODES"]

BATCH_SIZE = 1_000
# Each process numbers its events from INDEX * _STRIDE, so processes make different inputs.
_STRIDE = 10_000_000

_INSERT = (
    f"INSERT INTO event_log ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join(f'${k}' for k in range(1, len(COLUMNS) + 1))})"
)
_INSERT_NOTIFY = f"WITH ins AS ({_INSERT} RETURNING 1) SELECT pg_notify('event_log', '') FROM ins"


class _Counter:
    """The running event index of one process, shared by its tasks."""

    def __init__(self, first: int) -> None:
        self.next = first

    def take(self) -> int:
        i = self.next
        self.next += 1
        return i


def _event(i: int) -> dict[str, Any]:
    """The ``i``-th event as keyword arguments of ``log_event``, its data stamped."""
    e = make_input(i)
    data = dict(e.data or {})
    data["t"] = time.time()
    return {
        "event_type": e.event_type,
        "source": e.source,
        "task_id": e.task_id,
        "agent_id": e.agent_id,
        "data": data,
    }


def _row(i: int) -> tuple[Any, ...]:
    """The ``i``-th event as a raw row of the seven columns, in ``COLUMNS`` order."""
    e = _event(i)
    return (
        new_id(),
        e["event_type"],
        e["source"],
        e["task_id"],
        e["agent_id"],
        json.dumps(e["data"]),
        datetime.now(UTC),
    )


async def _wait_for_go() -> None:
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        raise RuntimeError(f"expected 'go' on stdin, got {line!r}")


async def _timed(
    tasks: int, seconds: float, step: Callable[[int], Awaitable[int]]
) -> tuple[int, float]:
    """Run ``tasks`` loops of ``step(task)`` (each returns the events it wrote) until
    ``seconds`` have passed since the start; return the events and the seconds taken."""
    start = perf_counter()
    deadline = start + seconds
    counts = [0] * tasks

    async def loop(k: int) -> None:
        while perf_counter() < deadline:
            counts[k] += await step(k)

    await asyncio.gather(*(loop(k) for k in range(tasks)))
    return sum(counts), perf_counter() - start


async def _raw_insert(url: str, seconds: float, tasks: int, first: int, sql: str) -> dict[str, Any]:
    conns = [await asyncpg.connect(asyncpg_dsn(url)) for _ in range(tasks)]
    try:
        counter = _Counter(first)
        for conn in conns:  # prepares the statement on each connection
            await conn.execute(sql, *_row(counter.take()))

        async def step(k: int) -> int:
            await conns[k].execute(sql, *_row(counter.take()))
            return 1

        await _wait_for_go()
        events, elapsed = await _timed(tasks, seconds, step)
    finally:
        for conn in conns:
            await conn.close()
    return {"events": events, "seconds": elapsed, "warm_up_rows": tasks}


async def _log_event(url: str, seconds: float, tasks: int, first: int) -> dict[str, Any]:
    async with EventLogger.open(url, migrate=False) as log:
        counter = _Counter(first)
        warm = _event(counter.take())
        warm["task_id"] = "warm-up"
        await log.log_event(**warm)

        async def step(k: int) -> int:
            await log.log_event(**_event(counter.take()))
            return 1

        await _wait_for_go()
        events, elapsed = await _timed(tasks, seconds, step)
    return {"events": events, "seconds": elapsed, "warm_up_rows": 1}


async def _raw_copy_batches(url: str, seconds: float, first: int) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        counter = _Counter(first)
        await conn.copy_records_to_table(
            "event_log", records=[_row(counter.take())], columns=COLUMNS
        )

        async def step(_: int) -> int:
            rows = (_row(counter.take()) for _ in range(BATCH_SIZE))
            await conn.copy_records_to_table("event_log", records=rows, columns=COLUMNS)
            return BATCH_SIZE

        await _wait_for_go()
        events, elapsed = await _timed(1, seconds, step)
    finally:
        await conn.close()
    return {"events": events, "seconds": elapsed, "warm_up_rows": 1}


async def _log_events_batches(url: str, seconds: float, first: int) -> dict[str, Any]:
    async with EventLogger.open(url, migrate=False) as log:
        counter = _Counter(first)
        await log.log_events([_event(counter.take())])

        async def step(_: int) -> int:
            await log.log_events([_event(counter.take()) for _ in range(BATCH_SIZE)])
            return BATCH_SIZE

        await _wait_for_go()
        events, elapsed = await _timed(1, seconds, step)
    return {"events": events, "seconds": elapsed, "warm_up_rows": 1}


async def _raw_copy_once(url: str, seconds: float, first: int) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        counter = _Counter(first)
        await conn.copy_records_to_table(
            "event_log", records=[_row(counter.take())], columns=COLUMNS
        )
        made = 0

        def rows(deadline: float) -> Iterator[tuple[Any, ...]]:
            nonlocal made
            while perf_counter() < deadline:
                made += 1
                yield _row(counter.take())

        await _wait_for_go()
        start = perf_counter()
        await conn.copy_records_to_table(
            "event_log", records=rows(start + seconds), columns=COLUMNS
        )
        elapsed = perf_counter() - start
    finally:
        await conn.close()
    return {"events": made, "seconds": elapsed, "warm_up_rows": 1}


MODES = (
    "raw_insert",
    "raw_insert_notify",
    "log_event",
    "raw_copy_batches",
    "log_events_batches",
    "raw_copy_once",
)


async def _run(mode: str, url: str, seconds: float, tasks: int, index: int) -> dict[str, Any]:
    first = index * _STRIDE
    if mode == "raw_insert":
        return await _raw_insert(url, seconds, tasks, first, _INSERT)
    if mode == "raw_insert_notify":
        return await _raw_insert(url, seconds, tasks, first, _INSERT_NOTIFY)
    if mode == "log_event":
        return await _log_event(url, seconds, tasks, first)
    if mode == "raw_copy_batches":
        return await _raw_copy_batches(url, seconds, first)
    if mode == "log_events_batches":
        return await _log_events_batches(url, seconds, first)
    if mode == "raw_copy_once":
        return await _raw_copy_once(url, seconds, first)
    raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print(
            "usage: python -m bench._process_worker MODE URL SECONDS TASKS INDEX", file=sys.stderr
        )
        return 2
    mode, url, seconds, tasks, index = args
    result = asyncio.run(_run(mode, url, float(seconds), int(tasks), int(index)))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
