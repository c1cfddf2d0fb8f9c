"""The cached read database: a realistic month of swarm events, built once.

``ensure_dataset(rows)`` returns a database under ``bench/data/`` holding
``rows`` events (1,000,000 in a full run, 20,000 in quick mode), building it when
it is missing or stale. Building runs in a subprocess (``python -m bench.dataset
PATH ROWS``), so the memory it takes never counts against anything measured.

The shape: tasks of ~100 events each (60-140) whose lifecycles (created,
bidding, 3-8 bids, auction closed, assigned, started, tool calls with the odd
failure, status changes and system notes, then completed or, for 7%, failed)
spread over a few minutes to six hours; task starts are uniform over the 30 days
before the build, so ~1/720 of the rows (~1,400 of a million) fall into the last
hour; tasks still running at build time are cut off there, as in a live log.
``ensure_dataset(rows, span_days=1)`` packs the same shape into one day (the
histogram benchmark's million rows in a day).
About 1% of rows are agent events without a task (joined, left, status
changes). 500 agents; data is a small JSON object per event. A 1,000,000-row
database has ~10,000 tasks.

The rows go into the schema of the first migration (the original design's seven columns;
created with the checkout's Alembic CLI), in the stored form (fixed-width UTC
text timestamps, compact JSON, UUIDv7 ids whose millisecond part is the
event's time), with stdlib ``sqlite3``, oldest first, as a live log appends
them. For speed the secondary indexes are dropped during the bulk insert and
recreated from their own stored SQL. Then ``event_log.upgrade()`` brings the
database to the newest revision, so whatever later migrations add (e.g. a
commit sequence number) is filled the way the library fills it for a deployed
database, and the schema is exactly the migrations'. A JSON file beside the
database records when it was built (reads and the prune shift their time
windows by the database's age) and a sample of task ids.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import event_log
from event_log.backends.sqlite._types import format_utc

from .common import DATA_DIR, INSERT_SQL, ROOT, remove_sqlite_files, sqlite_url

__all__ = ["FORMAT", "SPAN_DAYS", "Dataset", "build", "ensure_dataset"]

FORMAT = 2  # bump when the generator changes, so stale caches are rebuilt
SPAN_DAYS = 30
AGENTS = tuple(f"agent-{k:03d}" for k in range(500))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOOLS = ("search", "read_file", "write_file", "http_get", "run_tests", "summarise")
_SAMPLE_TASKS = 200


@dataclass(frozen=True, slots=True)
class Dataset:
    """A built read database and what the benchmarks need to know about it."""

    path: Path
    rows: int
    built_at: datetime
    tasks: tuple[str, ...]  # a sample of task ids with full stories
    agents: tuple[str, ...]
    span_days: int = SPAN_DAYS  # the events' time span, ending at built_at

    @property
    def url(self) -> str:
        return sqlite_url(self.path)

    def age(self) -> timedelta:
        """How long ago the newest events were written (the windows shift by this)."""
        return datetime.now(UTC) - self.built_at


def _paths(rows: int, data_dir: Path, span_days: int = SPAN_DAYS) -> tuple[Path, Path]:
    suffix = "" if span_days == SPAN_DAYS else f"-{span_days}d"
    db = data_dir / f"reads-{rows}{suffix}.db"
    return db, db.with_suffix(".json")


def _load(rows: int, data_dir: Path, span_days: int) -> Dataset | None:
    db, meta_path = _paths(rows, data_dir, span_days)
    if not db.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta["format"] != FORMAT or meta["rows"] != rows:
            return None
        if meta.get("span_days", SPAN_DAYS) != span_days:
            return None
        return Dataset(
            path=db,
            rows=rows,
            built_at=datetime.fromisoformat(meta["built_at"]),
            tasks=tuple(meta["tasks"]),
            agents=tuple(meta["agents"]),
            span_days=span_days,
        )
    except (ValueError, KeyError, TypeError):
        return None


def ensure_dataset(
    rows: int, data_dir: Path = DATA_DIR, *, span_days: int = SPAN_DAYS, timeout: float = 900
) -> Dataset:
    """The cached ``rows``-event database over ``span_days``, built first (in a subprocess)
    when needed.

    The schema is brought to the newest revision either way, so a cache made
    before a new migration still matches the code under test.
    """
    dataset = _load(rows, data_dir, span_days)
    if dataset is None:
        db, _ = _paths(rows, data_dir, span_days)
        data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        subprocess.run(
            [sys.executable, "-m", "bench.dataset", str(db), str(rows), str(span_days)],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=timeout,
        )
        dataset = _load(rows, data_dir, span_days)
        if dataset is None:
            raise RuntimeError(f"building the read database {db} left no usable cache")
    asyncio.run(event_log.upgrade(dataset.url))
    return dataset


# -- generation -------------------------------------------------------------------------

# (event_type, source, agent_id, data) of one event in a task's story
Step = tuple[str, str, str | None, dict[str, Any] | None]


def _task_story(rng: random.Random, length: int) -> list[Step]:
    """One task's events in order: auction, assignment, work, outcome."""
    winner = rng.choice(AGENTS)
    steps: list[Step] = [
        (
            "task.created",
            "coordinator",
            None,
            {"title": "task", "budget_sats": rng.randint(100, 5000)},
        ),
        ("task.bidding", "coordinator", None, {"min_bids": 3}),
    ]
    bids = rng.randint(3, 8)
    for _ in range(bids):
        bidder = rng.choice(AGENTS)
        steps.append(("bid.submitted", bidder, bidder, {"bid_sats": rng.randint(50, 900)}))
    steps += [
        ("auction.closed", "coordinator", None, {"bids": bids, "winner": winner}),
        ("task.assigned", "coordinator", winner, {"bid_sats": rng.randint(50, 900)}),
        ("task.started", winner, winner, {"attempt": 1}),
    ]
    while len(steps) < length - 1:
        roll = rng.random()
        if roll < 0.015:
            steps.append(("agent.status_changed", winner, winner, {"status": "busy"}))
        elif roll < 0.030:
            steps.append(("system.info", "coordinator", winner, {"msg": "checkpoint"}))
        elif roll < 0.036:
            steps.append(("system.warning", "coordinator", winner, {"msg": "slow tool"}))
        elif roll < 0.038:
            steps.append(("system.error", "coordinator", winner, {"msg": "retrying"}))
        else:
            tool = rng.choice(_TOOLS)
            steps.append(("tool.called", winner, winner, {"tool": tool}))
            ms = rng.randint(5, 3000)
            if rng.random() < 0.03:
                steps.append(("tool.failed", winner, winner, {"tool": tool, "ms": ms}))
            else:
                steps.append(("tool.completed", winner, winner, {"tool": tool, "ms": ms}))
    del steps[length - 1 :]
    if rng.random() < 0.07:
        steps.append(("task.failed", winner, winner, {"reason": "tool errors"}))
    else:
        steps.append(("task.completed", winner, winner, {"cost_sats": rng.randint(50, 900)}))
    return steps


def _uuid7(ms: int, rand: int) -> str:
    """A canonical UUIDv7 string for millisecond ``ms`` with 74 random bits."""
    h = f"{ms:012x}7{(rand >> 62) & 0xFFF:03x}{(0b10 << 62) | (rand & ((1 << 62) - 1)):016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# (timestamp in µs since the epoch, event_type, source, task_id, agent_id, data JSON)
Pending = tuple[int, str, str, str | None, str | None, str | None]


def _generate(
    rows: int, now_us: int, rng: random.Random, span_days: int
) -> tuple[list[Pending], list[str]]:
    span_us = span_days * 86_400 * 1_000_000
    encode = json.JSONEncoder(separators=(",", ":")).encode
    events: list[Pending] = []
    sample: list[str] = []
    agent_rows = rows // 100
    # Agents come and go, and change status, outside any task.
    for _ in range(agent_rows):
        agent = rng.choice(AGENTS)
        kind = rng.choice(("agent.joined", "agent.left", "agent.status_changed"))
        data = {"status": rng.choice(("idle", "busy", "away"))}
        ts = now_us - rng.randrange(span_us)
        events.append((ts, kind, agent, None, agent, encode(data)))
    task_rows = rows - agent_rows
    while len(events) < rows:
        task_id = f"task-{rng.getrandbits(48):012x}"
        start = now_us - rng.randrange(span_us)
        duration = int(math.exp(rng.uniform(math.log(120e6), math.log(6 * 3600e6))))
        story = _task_story(rng, rng.randint(60, 140))
        offsets = sorted(rng.randrange(duration) for _ in range(len(story) - 1))
        times = [start, *(start + o for o in offsets)]
        kept = 0
        for ts, (step_type, source, step_agent, payload) in zip(times, story, strict=True):
            if ts > now_us or len(events) >= rows:
                break
            text = None if payload is None else encode(payload)
            events.append((ts, step_type, source, task_id, step_agent, text))
            kept += 1
        if kept == len(story) and len(sample) < _SAMPLE_TASKS:
            sample.append(task_id)
    assert len(events) == rows, (len(events), rows, task_rows)
    events.sort(key=lambda e: e[0])
    return events, sample


def _stored_rows(events: list[Pending], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for ts, kind, source, task_id, agent_id, data in events:
        when = _EPOCH + timedelta(microseconds=ts)
        yield (
            _uuid7(ts // 1000, rng.getrandbits(74)),
            kind,
            source,
            task_id,
            agent_id,
            data,
            format_utc(when),
        )


def _create_first_revision(url: str) -> None:
    """The schema of the first migration (the original design's seven columns and their indexes).

    Through the checkout's Alembic CLI, as docs/migrations.md documents it; ``+1`` from an
    empty database is the first revision, whatever later ones are called.
    """
    subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "alembic.ini"),
            "-x",
            f"url={url}",
            "upgrade",
            "+1",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def build(path: Path, rows: int, *, span_days: int = SPAN_DAYS, seed: int = 17) -> Dataset:
    """Build the read database at ``path`` (replacing it) and its JSON sidecar."""
    started = perf_counter()
    tmp = path.with_name(path.name + ".building")
    remove_sqlite_files(tmp)
    remove_sqlite_files(path)
    _create_first_revision(sqlite_url(tmp))
    built_at = datetime.now(UTC).replace(microsecond=0)
    now_us = (built_at - _EPOCH) // timedelta(microseconds=1)
    rng = random.Random(seed)
    events, sample = _generate(rows, now_us, rng, span_days)

    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -512000")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'event_log' AND sql IS NOT NULL"
        ).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.executemany(INSERT_SQL, _stored_rows(events, rng))
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    # The later revisions fill whatever they add (e.g. a commit sequence) for the
    # existing rows, exactly as in a deployment upgraded with data in it.
    asyncio.run(event_log.upgrade(sqlite_url(tmp)))
    remove_sqlite_files(path)
    os.replace(tmp, path)
    remove_sqlite_files(tmp)
    _, meta_path = _paths(rows, path.parent, span_days)
    meta = {
        "format": FORMAT,
        "rows": rows,
        "span_days": span_days,
        "built_at": built_at.isoformat(),
        "tasks": sample,
        "agents": list(AGENTS),
        "build_seconds": round(perf_counter() - started, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    return Dataset(path, rows, built_at, tuple(sample), AGENTS, span_days)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m bench.dataset PATH ROWS [SPAN_DAYS]", file=sys.stderr)
        return 2
    path, rows = Path(args[0]), int(args[1])
    span_days = int(args[2]) if len(args) == 3 else SPAN_DAYS
    started = perf_counter()
    print(
        f"building the {rows:,}-row read database {path} ({span_days} days) ...",
        file=sys.stderr,
        flush=True,
    )
    build(path, rows, span_days=span_days)
    print(f"built in {perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
