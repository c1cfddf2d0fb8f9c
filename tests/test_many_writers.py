"""Many writer processes on one PostgreSQL database, and a follower watching them all.

Four processes, each with its own logger, run 25 tasks at once; every task logs
its events in order through ``log_event``, ``emit`` and ``log_events``. The
parent, reading the table with the raw driver, checks that nothing was lost or
stored twice, that every row carries its transaction's id and no number (no
writer took the counter), that each task's events were committed in the order
it logged them, and that a follower started before the writers saw every event
exactly once, each transaction's events together.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from event_log import Event, EventLogger
from follow_helpers import started

pytestmark = pytest.mark.postgres

WORKER = Path(__file__).parent / "procs" / "many_writers.py"
PROCESSES = 4
TASKS = 25
EVENTS_PER_TASK = 40  # 4,000 events in all, plus one warm-up event per process


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _start(url: str, proc: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        url,
        str(proc),
        str(TASKS),
        str(EVENTS_PER_TASK),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line == b"ready\n", line
    return process


async def _finish(process: asyncio.subprocess.Process) -> list[list[Any]]:
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    logged: list[list[Any]] = json.loads(out.decode().strip().splitlines()[-1])
    return logged


async def test_four_processes_of_25_tasks_lose_nothing_and_follow_in_order(
    postgres_only_url: str,
) -> None:
    url = postgres_only_url
    total = PROCESSES * (TASKS * EVENTS_PER_TASK + 1)
    async with EventLogger.open(url) as log:
        seen: list[Event] = []

        events = log.follow()

        async def follow() -> None:
            async for event in events:
                seen.append(event)
                if len(seen) == total:
                    return

        follower = asyncio.create_task(follow())
        await started(events)  # before any writer starts
        processes = await asyncio.gather(*(_start(url, p) for p in range(PROCESSES)))
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        logged = await asyncio.gather(*(_finish(p) for p in processes))
        await asyncio.wait_for(follower, 30)
        await asyncio.sleep(0.2)  # nothing more arrives after the last event
        assert len(seen) == total

    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT id, seq, xid, data::text AS data FROM event_log ORDER BY xid, id"
        )
        counter = await conn.fetchval("SELECT to_regclass('event_log_sequence')")
    finally:
        await conn.close()

    # No lost or duplicated events, ids or contents.
    assert len(rows) == total
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == total
    contents = [json.loads(r["data"]) for r in rows]
    keys = {(d["proc"], d["task"], d["i"]) for d in contents if "task" in d}
    assert len(keys) == PROCESSES * TASKS * EVENTS_PER_TASK
    acknowledged = {
        event_id: (proc, task, i)
        for proc, entries in enumerate(logged)
        for event_id, task, i in entries
    }
    assert len(acknowledged) == PROCESSES * TASKS * EVENTS_PER_TASK
    stored = {
        r["id"]: (d["proc"], d["task"], d["i"])
        for r, d in zip(rows, contents, strict=True)
        if "task" in d
    }
    assert stored == acknowledged

    # No counter: every row has its transaction's id and no number.
    assert counter is None
    assert {r["seq"] for r in rows} == {None}
    assert None not in {r["xid"] for r in rows}

    # Each task's events were committed in the order the task logged them.
    by_id = dict(zip(ids, contents, strict=True))
    order: dict[tuple[int, int], list[int]] = {}
    for d in (by_id[e.id] for e in seen):
        if "task" in d:
            order.setdefault((d["proc"], d["task"]), []).append(d["i"])
    assert len(order) == PROCESSES * TASKS
    for key, indexes in order.items():
        assert indexes == list(range(EVENTS_PER_TASK)), key

    # The follower saw every event exactly once; each transaction's events together,
    # in the order they were written.
    assert sorted(e.id for e in seen) == sorted(ids)
    xid_of = {r["id"]: r["xid"] for r in rows}
    xids = [xid_of[e.id] for e in seen]
    assert len([x for n, x in enumerate(xids) if n == 0 or xids[n - 1] != x]) == len(set(xids))
    rank = {event_id: n for n, event_id in enumerate(ids)}  # (xid, id) order
    for xid in set(xids):
        mine = [rank[e.id] for e in seen if xid_of[e.id] == xid]
        assert mine == sorted(mine)
