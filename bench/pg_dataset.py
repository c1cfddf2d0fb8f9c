"""The cached PostgreSQL read database: the same swarm month as ``dataset``, at scale.

``ensure_pg_dataset(admin_url, rows)`` returns a database named
``event_log_bench_<size>`` (``event_log_bench_10m`` for 10,000,000 rows) on the
server of ``admin_url``, building it when it is missing or not valid, and
reusing it across runs otherwise. Valid means: a ``bench_dataset`` table with
this module's ``FORMAT``, the requested row count, and an ``event_log`` holding
that many rows; the schema is then brought to this checkout's newest revision
with ``event_log.upgrade()`` (as the SQLite cache is).

Building: ``event_log.upgrade()`` makes the schema of the newest revision, the
secondary indexes are dropped, the rows go in with one binary ``COPY`` (oldest
first; PostgreSQL numbers no rows, and every row gets the loading
transaction's id, as a live log's rows get theirs), the indexes are recreated,
then ``VACUUM ANALYZE``. It runs in a subprocess (``python -m bench.pg_dataset ADMIN_URL
ROWS``), so its memory never counts against anything measured.

The generator streams: tasks (the stories of ``dataset._task_story``, ~100
events each, spread over a few minutes to six hours) start in time order,
uniformly over the 30 days before the build; their events wait in a heap and
leave it in timestamp order, so memory stays bounded by the tasks running at
once. Tasks still running at build time are cut off there, as in a live log.
About 1% of rows are agent events without a task, at uniform times: as many
as the tasks leave to the exact count (a first pass counts the tasks' rows).
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

import event_log

from .common import ROOT
from .dataset import _EPOCH, AGENTS, SPAN_DAYS, _task_story, _uuid7
from .postgres import asyncpg_dsn

__all__ = ["FORMAT", "PgDataset", "database_name", "ensure_pg_dataset"]

FORMAT = 3  # bump when the generator changes, so stale databases are rebuilt
_SAMPLE_TASKS = 200
_COLUMNS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")


@dataclass(frozen=True, slots=True)
class PgDataset:
    """A built PostgreSQL read database and what the benchmarks need to know about it."""

    url: str
    rows: int
    built_at: datetime
    tasks: tuple[str, ...]
    build_seconds: float

    def age(self) -> timedelta:
        return datetime.now(UTC) - self.built_at


def database_name(rows: int) -> str:
    """``event_log_bench_10m`` for 10,000,000 rows, ``event_log_bench_20k`` for 20,000."""
    for unit, size in (("m", 1_000_000), ("k", 1_000)):
        if rows >= size and rows % size == 0:
            return f"event_log_bench_{rows // size}{unit}"
    return f"event_log_bench_{rows}"


# -- generation -------------------------------------------------------------------------


def _tasks(
    count: int, now_us: int, rng: random.Random, sample: list[str] | None
) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """``count`` tasks in start order: (start, its events up to the build time)."""
    span_us = SPAN_DAYS * 86_400 * 1_000_000
    encode = json.JSONEncoder(separators=(",", ":")).encode
    for start in sorted(now_us - rng.randrange(span_us) for _ in range(count)):
        task_id = f"task-{rng.getrandbits(48):012x}"
        duration = int(math.exp(rng.uniform(math.log(120e6), math.log(6 * 3600e6))))
        story = _task_story(rng, rng.randint(60, 140))
        offsets = sorted(rng.randrange(duration) for _ in range(len(story) - 1))
        events: list[tuple[Any, ...]] = []
        for ts, (kind, source, agent, payload) in zip(
            [start, *(start + o for o in offsets)], story, strict=True
        ):
            if ts > now_us:  # still running at build time: cut off, as in a live log
                break
            if sample is not None:
                text = None if payload is None else encode(payload)
                events.append((ts, kind, source, task_id, agent, text))
            else:
                events.append((ts,))
        if sample is not None and len(events) == len(story) and len(sample) < _SAMPLE_TASKS:
            sample.append(task_id)
        yield start, events


def _events(rows: int, now_us: int, seed: int, sample: list[str]) -> Iterator[Any]:
    """Exactly ``rows`` events as (ts_us, type, source, task_id, agent_id, data JSON),
    oldest first.

    The tasks make ~99% of the rows; agent events without a task make the rest
    (their count is what the tasks leave over, found by a first, counting pass
    over the same task generator), at uniform times, merged in.
    """
    span_us = SPAN_DAYS * 86_400 * 1_000_000
    task_count = (rows - rows // 100) // 100
    task_rows = sum(len(e) for _, e in _tasks(task_count, now_us, random.Random(seed), None))
    if task_rows > rows:
        raise RuntimeError(f"the tasks alone make {task_rows:,} rows, more than {rows:,}")
    agents_rng = random.Random(seed + 1)
    # Agent events without a task, newest first (popped from the end, oldest first).
    agent_times = sorted(
        (now_us - agents_rng.randrange(span_us) for _ in range(rows - task_rows)), reverse=True
    )
    encode = json.JSONEncoder(separators=(",", ":")).encode

    def agent_event(ts: int) -> tuple[Any, ...]:
        agent = agents_rng.choice(AGENTS)
        kind = agents_rng.choice(("agent.joined", "agent.left", "agent.status_changed"))
        status = agents_rng.choice(("idle", "busy"))
        return (ts, kind, agent, None, agent, encode({"status": status}))

    pending: list[tuple[int, int, tuple[Any, ...]]] = []  # (ts, tiebreak, event)
    tiebreak = 0

    def drain(until: int) -> Iterator[tuple[Any, ...]]:
        """Every waiting event up to ``until``, agent events merged in, oldest first."""
        while pending and pending[0][0] <= until:
            ts, _, event = heapq.heappop(pending)
            while agent_times and agent_times[-1] <= ts:
                yield agent_event(agent_times.pop())
            yield event

    for start, events in _tasks(task_count, now_us, random.Random(seed), sample):
        yield from drain(start)  # later tasks start later: these are final
        for event in events:
            heapq.heappush(pending, (event[0], tiebreak, event))
            tiebreak += 1
    yield from drain(now_us)
    while agent_times:
        yield agent_event(agent_times.pop())


def _records(rows: int, now_us: int, seed: int, sample: list[str]) -> Iterator[Any]:
    rng = random.Random(seed + 2)  # the ids' random bits
    for ts, kind, source, task_id, agent_id, data in _events(rows, now_us, seed, sample):
        yield (
            _uuid7(ts // 1000, rng.getrandbits(74)),
            kind,
            source,
            task_id,
            agent_id,
            data,
            _EPOCH + timedelta(microseconds=ts),
        )


# -- building and reusing -----------------------------------------------------------------


async def _meta(url: str) -> dict[str, Any] | None:
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    except (OSError, asyncpg.PostgresError):
        return None  # no such database (yet)
    try:
        if await conn.fetchval("SELECT to_regclass('bench_dataset')") is None:
            return None
        text = await conn.fetchval("SELECT meta FROM bench_dataset")
        meta: dict[str, Any] = json.loads(text)
        if meta.get("format") != FORMAT or meta.get("rows") is None:
            return None
        # The count is the slow part of the check; the planner's estimate is not enough.
        if await conn.fetchval("SELECT count(*) FROM event_log") != meta["rows"]:
            return None
        return meta
    finally:
        await conn.close()


def _load(url: str, rows: int) -> PgDataset | None:
    meta = asyncio.run(_meta(url))
    if meta is None or meta["rows"] != rows:
        return None
    return PgDataset(
        url=url,
        rows=rows,
        built_at=datetime.fromisoformat(meta["built_at"]),
        tasks=tuple(meta["tasks"]),
        build_seconds=float(meta.get("build_seconds", 0)),
    )


async def _build(admin_url: str, url: str, rows: int, seed: int) -> None:
    started = perf_counter()
    name = make_url(url).database
    admin = await asyncpg.connect(asyncpg_dsn(admin_url), timeout=10)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await event_log.upgrade(url)
    built_at = datetime.now(UTC).replace(microsecond=0)
    now_us = (built_at - _EPOCH) // timedelta(microseconds=1)
    sample: list[str] = []
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        # Secondary indexes (not the primary key) are rebuilt after the load: faster.
        indexes = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "WHERE i.tablename = 'event_log' AND NOT EXISTS ("
            "  SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')

        def records() -> Iterator[Any]:
            for n, record in enumerate(_records(rows, now_us, seed, sample)):
                if n % 100_000 == 0 and conn.is_closed():
                    # The driver would go on encoding into a dead socket.
                    raise ConnectionError("the connection was lost during the COPY")
                yield record

        await conn.copy_records_to_table("event_log", records=records(), columns=_COLUMNS)
        for index in indexes:
            await conn.execute(index["indexdef"])
        await conn.execute("VACUUM ANALYZE event_log")
        meta = {
            "format": FORMAT,
            "rows": rows,
            "built_at": built_at.isoformat(),
            "tasks": sample,
            "build_seconds": round(perf_counter() - started, 1),
        }
        await conn.execute("CREATE TABLE bench_dataset (meta text NOT NULL)")
        await conn.execute("INSERT INTO bench_dataset VALUES ($1)", json.dumps(meta))
    finally:
        await conn.close()


def ensure_pg_dataset(admin_url: str, rows: int, *, timeout: float = 3600) -> PgDataset:
    """The cached ``rows``-event PostgreSQL database, built first (in a subprocess) if needed."""
    url = make_url(admin_url).set(database=database_name(rows)).render_as_string(False)
    dataset = _load(url, rows)
    if dataset is None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        subprocess.run(
            [sys.executable, "-m", "bench.pg_dataset", admin_url, str(rows)],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=timeout,
        )
        dataset = _load(url, rows)
        if dataset is None:
            raise RuntimeError(f"building {database_name(rows)} left no usable database")
    # A database built before a newer migration still matches the code under test.
    asyncio.run(event_log.upgrade(url))
    return dataset


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.pg_dataset ADMIN_URL ROWS", file=sys.stderr)
        return 2
    admin_url, rows = args[0], int(args[1])
    name = database_name(rows)
    url = make_url(admin_url).set(database=name).render_as_string(False)
    started = perf_counter()
    print(f"building the {rows:,}-row PostgreSQL database {name} ...", file=sys.stderr, flush=True)
    asyncio.run(_build(admin_url, url, rows, seed=17))
    print(f"built in {perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
