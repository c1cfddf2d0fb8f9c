"""``python -m bench.processes``: PostgreSQL writes from many processes, raw and event-log.

Each measurement starts N writer processes (``bench._process_worker``), waits
until each has connected and written its warm-up rows, then releases them
together with a "go" line on stdin; each writes for ``--seconds`` and reports
how many events it wrote. Throughput is the events of all processes over the
longest of their timed parts (the configured seconds plus the last write's
completion). Every measurement runs on an emptied ``event_log`` table of one
scratch database whose schema ``event_log.upgrade`` created; afterwards the
table must hold exactly the events reported plus the warm-up rows.

The raw rows fill the seven columns of an event (id, event_type, source,
task_id, agent_id, data, timestamp) of that same table, with its indexes;
every other column keeps its default. Every event's data is stamped with
``time.time()`` as it is made, raw rows and the logger's alike. Rows of the table:

- one at a time: each process one asyncpg connection (autocommit) awaiting
  one single-row INSERT after another, against ``log_event`` awaited one
  at a time by one task of each process;
- the raw INSERT with ``pg_notify('event_log', '')`` in the same statement,
  beside the same ``log_event`` run (information: the logger's commits send
  a NOTIFY too);
- 10 tasks per process: raw, each task with its own connection; event-log,
  one logger per process shared by its 10 tasks;
- bulk, one process: ``copy_records_to_table`` of 1,000 rows, a transaction
  each, against ``log_events`` of 1,000 events awaited one after another;
  and (information) one ``COPY`` streaming rows for the whole run;
- ``follow()`` under load: ``log_event`` from the largest N of processes once
  more while this process follows the table on a logger of its own; the
  delay is the follower's ``time.time()`` when it yields an event minus the
  event's stamp (median and p95 of each round). Its raw counterpart is the
  raw one-at-a-time run of that N.

Each round runs every raw measurement and then its event-log counterpart,
back to back; the table shows the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

import event_log
from event_log import EventLogger

from . import postgres
from .common import ROOT, percentile
from .postgres import asyncpg_dsn

__all__ = ["TASKS", "BenchError", "Row", "Run", "main", "measure"]

TASKS = 10  # tasks per process of the "10 tasks" rows
_START_TIMEOUT_S = 120.0  # to start, connect and warm up
_DRAIN_TIMEOUT_S = 60.0  # beyond --seconds, to finish and report
_FOLLOW_TIMEOUT_S = 30.0  # for the follower to yield the last event
_END_TIMEOUT_S = 10.0  # for a worker that will not report to end once its stdin is closed
_POLL_INTERVAL_S = 30.0  # the follower's polls: far beyond any delay NOTIFY allows
_SOURCE = "processes-bench"


class BenchError(RuntimeError):
    """A measurement could not be made; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Run:
    """One measurement: ``processes`` workers of ``mode`` with ``tasks`` tasks each."""

    mode: str
    processes: int
    tasks: int = 1
    follow: bool = False

    def describe(self) -> str:
        tasks = f" x {self.tasks} tasks" if self.tasks > 1 else ""
        follow = " + follower" if self.follow else ""
        return f"{self.mode}, {self.processes} process(es){tasks}{follow}"


@dataclass(frozen=True, slots=True)
class Row:
    """A line of the table: a raw measurement beside an event-log one."""

    label: str
    n: int
    raw: Run
    logged: Run


@dataclass(slots=True)
class Result:
    events_per_s: float
    follow_ms: tuple[float, float] | None = None  # median, p95


def _rows(ns: tuple[int, ...]) -> list[Row]:
    top = ns[-1]
    rows = [
        Row("INSERT | log_event, one at a time", n, Run("raw_insert", n), Run("log_event", n))
        for n in ns
    ]
    rows.append(
        Row(
            "INSERT + pg_notify (info) | log_event",
            top,
            Run("raw_insert_notify", top),
            Run("log_event", top),
        )
    )
    rows += [
        Row(
            f"{TASKS} tasks/process: INSERT | log_event",
            n,
            Run("raw_insert", n, TASKS),
            Run("log_event", n, TASKS),
        )
        for n in ns
    ]
    rows += [
        Row(
            "bulk: COPY | log_events, 1,000 each",
            1,
            Run("raw_copy_batches", 1),
            Run("log_events_batches", 1),
        ),
        Row(
            "bulk: one COPY (info) | log_events",
            1,
            Run("raw_copy_once", 1),
            Run("log_events_batches", 1),
        ),
        Row(
            "follow() under load: INSERT | log_event",
            top,
            Run("raw_insert", top),
            Run("log_event", top, follow=True),
        ),
    ]
    return rows


def _order(rows: list[Row]) -> list[Run]:
    """The measurements of a round: each row's raw run, then its event-log run.

    A run shared by two rows is measured once, where it first appears; the
    information row with NOTIFY goes before the plain pair of the same N, so
    that pair stays back to back.
    """
    order: list[Run] = []
    notify = [row for row in rows if row.raw.mode == "raw_insert_notify"]
    for row in rows:
        if row in notify:
            continue
        for twin in notify:
            if twin.logged == row.logged and twin.raw not in order:
                order.append(twin.raw)
        for run in (row.raw, row.logged):
            if run not in order:
                order.append(run)
    return order


# -- one measurement ------------------------------------------------------------------------


def _tail(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output on stderr)"


async def _end(proc: asyncio.subprocess.Process) -> bytes:
    """Let a worker that will not report end, and return its stderr.

    Its stdin is closed, so one waiting for "go" stops at once; it is killed
    only when it has not ended after a while (killing one that has just ended
    would race asyncio's own wait for it).
    """
    if proc.stdin is not None and not proc.stdin.is_closing():
        proc.stdin.close()
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), _END_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"killed after {_END_TIMEOUT_S:.0f} s".encode()
    return stderr


class _Follower:
    """``follow()`` on a logger of this process, collecting each event's delay."""

    def __init__(self, log: EventLogger) -> None:
        self._log = log
        self.delays: list[float] = []
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Follow from a new event on; return once the follower listens."""
        cursor = await self._log.log_event(
            "system.info", _SOURCE, task_id="warm-up", data={"cursor": True}
        )
        self._task = asyncio.create_task(self._consume(cursor.id))
        # An event logged once the follower runs: when it arrives, the follower listens.
        await self._log.log_event("system.info", _SOURCE, task_id="warm-up", data={"up": True})
        await asyncio.wait_for(self._started.wait(), _FOLLOW_TIMEOUT_S)

    async def _consume(self, cursor: str) -> None:
        async for event in self._log.follow(cursor=cursor):
            received = time.time()
            if event.task_id == "warm-up":
                if event.source == _SOURCE:
                    self._started.set()
                continue
            self.delays.append(received - float((event.data or {})["t"]))

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` measured events have arrived, then stop following."""
        assert self._task is not None
        deadline = time.monotonic() + _FOLLOW_TIMEOUT_S
        while len(self.delays) < count:
            if self._task.done():
                self._task.result()  # raises what ended it
                raise BenchError("the follower ended early")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the follower saw {len(self.delays):,} of {count:,} events "
                    f"within {_FOLLOW_TIMEOUT_S:.0f} s"
                )
            await asyncio.sleep(0.01)
        await self.cancel()

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _workers(
    url: str, run: Run, seconds: float, follower: _Follower | None
) -> list[dict[str, Any]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench._process_worker",
            run.mode,
            url,
            repr(seconds),
            str(run.tasks),
            str(index),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for index in range(run.processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), _START_TIMEOUT_S)
            except TimeoutError:
                line = b""
            if line != b"ready\n":
                raise BenchError(
                    f"a worker ({run.describe()}) did not start: {_tail(await _end(proc))}"
                )
        if follower is not None:
            await follower.start()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        await asyncio.gather(*(proc.stdin.drain() for proc in procs if proc.stdin))
        try:
            outputs = await asyncio.wait_for(
                asyncio.gather(*(proc.communicate() for proc in procs)),
                seconds + _DRAIN_TIMEOUT_S,
            )
        except TimeoutError:
            raise BenchError(
                f"the workers ({run.describe()}) did not finish within "
                f"{seconds + _DRAIN_TIMEOUT_S:.0f} s"
            ) from None
    finally:
        for proc in procs:
            if proc.returncode is None:
                await _end(proc)
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise BenchError(
                f"a worker ({run.describe()}) failed (exit {proc.returncode}): {_tail(err)}"
            )
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def measure(url: str, run: Run, seconds: float) -> Result:
    """Empty the table, run the workers, check the table holds what they reported."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("TRUNCATE event_log")
        extra = 0
        follow_ms: tuple[float, float] | None = None
        if run.follow:
            async with EventLogger.open(url, migrate=False, poll_interval=_POLL_INTERVAL_S) as log:
                follower = _Follower(log)
                try:
                    results = await _workers(url, run, seconds, follower)
                    await follower.wait_for(sum(r["events"] for r in results))
                finally:
                    await follower.cancel()
            delays_ms = [d * 1000.0 for d in follower.delays]
            follow_ms = (statistics.median(delays_ms), percentile(delays_ms, 0.95))
            extra = 2  # the follower's cursor and start events
        else:
            results = await _workers(url, run, seconds, None)
        events = sum(int(r["events"]) for r in results)
        expected = events + sum(int(r["warm_up_rows"]) for r in results) + extra
        stored = await conn.fetchval("SELECT count(*) FROM event_log")
    finally:
        await conn.close()
    if stored != expected:
        raise BenchError(
            f"{run.describe()}: the table holds {stored:,} rows, the workers reported {expected:,}"
        )
    if events == 0:
        raise BenchError(f"{run.describe()}: no event was written in {seconds} s")
    return Result(events / max(float(r["seconds"]) for r in results), follow_ms)


# -- the run ----------------------------------------------------------------------------------


def _revision() -> str:
    """The commit checked out, and whether ``src/`` differs from it (and how: a hash)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD")
    if not rev:
        return "unknown (not a git checkout)"
    changes = git("status", "--porcelain", "--untracked-files=all", "--", "src")
    if not changes:
        return rev
    diff = git("diff", "HEAD", "--", "src") + changes
    return f"{rev} with src/ modified (diff {hashlib.sha1(diff.encode()).hexdigest()[:8]})"


def _ratio(row: Row, round_: dict[Run, Result]) -> float:
    return round_[row.logged].events_per_s / round_[row.raw].events_per_s


def _round_line(row: Row, round_: dict[Run, Result], number: int) -> str:
    raw, logged = round_[row.raw], round_[row.logged]
    line = (
        f"round {number}: {row.label}, N={row.n}: raw {raw.events_per_s:,.0f}, "
        f"event-log {logged.events_per_s:,.0f} events/s, {_ratio(row, round_):.2f}x"
    )
    if logged.follow_ms is not None:
        line += f"; follow() median {logged.follow_ms[0]:.1f} ms, p95 {logged.follow_ms[1]:.1f} ms"
    return line


def _table(rows: list[Row], rounds: list[dict[Run, Result]]) -> list[str]:
    header = ("row", "N", "raw events/s", "event-log events/s", "ratio median (min-max)")
    lines = ["{:42}  {:>2}  {:>12}  {:>18}  {}".format(*header)]
    for row in rows:
        ratios = [_ratio(row, r) for r in rounds]
        raw = statistics.median(r[row.raw].events_per_s for r in rounds)
        logged = statistics.median(r[row.logged].events_per_s for r in rounds)
        lines.append(
            f"{row.label:42}  {row.n:>2}  {raw:12,.0f}  {logged:18,.0f}  "
            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        )
        follow = [r[row.logged].follow_ms for r in rounds]
        if all(f is not None for f in follow):
            medians = [f[0] for f in follow if f is not None]
            p95s = [f[1] for f in follow if f is not None]
            lines.append(
                f"{'  follow() delay, ms: median':42}  {'':>2}  {'':>12}  "
                f"{statistics.median(medians):18.1f}  "
                f"rounds {', '.join(f'{m:.1f}' for m in medians)}"
            )
            lines.append(
                f"{'  follow() delay, ms: p95':42}  {'':>2}  {'':>12}  "
                f"{statistics.median(p95s):18.1f}  "
                f"rounds {', '.join(f'{p:.1f}' for p in p95s)}"
            )
    return lines


async def _rounds(url: str, rows: list[Row], count: int, seconds: float) -> list[dict[Run, Result]]:
    order = _order(rows)
    rounds: list[dict[Run, Result]] = []
    for number in range(1, count + 1):
        done: dict[Run, Result] = {}
        printed: set[Row] = set()
        for run in order:
            done[run] = await measure(url, run, seconds)
            for row in rows:
                if row not in printed and row.raw in done and row.logged in done:
                    printed.add(row)
                    print(_round_line(row, done, number), flush=True)
        rounds.append(done)
    return rounds


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.processes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="timed part of each measurement (default: 3; 0.3 with --quick)",
    )
    parser.add_argument("--rounds", type=int, help="rounds (default: 3; 1 with --quick)")
    parser.add_argument(
        "--postgres-url",
        metavar="URL",
        default=os.environ.get(postgres.PG_URL_ENV, postgres.DEFAULT_ADMIN_URL),
        help=(
            "an asyncpg URL of a server where a scratch database may be created and dropped "
            f"(default: ${postgres.PG_URL_ENV}, else {postgres.DEFAULT_ADMIN_URL})"
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: tiny durations, N = 1 and 2 only"
    )
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.3 if args.quick else 3.0
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1 or not args.seconds > 0:
        parser.error("--rounds must be at least 1 and --seconds above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    ns = (1, 2) if args.quick else (1, 4, 8)
    why = postgres.unreachable(args.postgres_url)
    if why is not None:
        print(why, file=sys.stderr)
        return 1
    rows = _rows(ns)
    revision = _revision()
    print(
        f"PostgreSQL {postgres.server_version(args.postgres_url)}; {os.cpu_count()} CPUs; "
        f"revision {revision}; {args.rounds} round(s) of {args.seconds:g} s per measurement",
        flush=True,
    )
    try:
        with postgres.scratch_database(args.postgres_url) as url:
            asyncio.run(event_log.upgrade(url))
            rounds = asyncio.run(_rounds(url, rows, args.rounds, args.seconds))
    except (BenchError, OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"bench.processes failed: {exc}", file=sys.stderr)
        return 1
    after = _revision()
    print()
    if after != revision:
        print(f"revision changed during the run: {revision} -> {after}")
    print("\n".join(_table(rows, rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
