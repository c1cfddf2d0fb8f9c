"""Many writer processes, two follower processes, one of them killed and resumed from its cursor.

Four writer processes (``procs/many_writers.py``) log concurrently, for a few
seconds, while two follower processes (``procs/follower.py``) print every
event with the follower's ``cursor`` after it. One follower is killed with
SIGKILL about halfway and started again with the last cursor it printed. Across its two
lives each follower must have seen every stored event exactly once (none
lost, none doubled), and each task's events in the order the task logged
them; on a plain table and on one partitioned by day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from event_log import upgrade

pytestmark = pytest.mark.postgres

PROCS = Path(__file__).parent / "procs"
PROCESSES = 4
TASKS = 20
EVENTS_PER_TASK = 30
# Each writer task sleeps this long after each call, so the writes last a few
# seconds and the follower is killed, and resumed, while they go on.
PAUSE = 0.25
TOTAL = PROCESSES * (TASKS * EVENTS_PER_TASK + 1)  # and one warm-up event per writer
# The test reads a follower's output through a small buffer, so a follower killed
# after the test read half the events has printed not much more than that.
READ_LIMIT = 4096


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _writer(url: str, proc: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROCS / "many_writers.py"),
        url,
        str(proc),
        str(TASKS),
        str(EVENTS_PER_TASK),
        str(PAUSE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 60) == b"ready\n"
    return process


async def _writer_done(process: asyncio.subprocess.Process) -> list[list[Any]]:
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0
    logged: list[list[Any]] = json.loads(out.decode().strip().splitlines()[-1])
    return logged


class FollowerProcess:
    """One life of ``procs/follower.py`` and the lines it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, cursor: str | None = None) -> FollowerProcess:
        args = [] if cursor is None else ["--cursor", cursor]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROCS / "follower.py"),
            url,
            *args,
            stdout=asyncio.subprocess.PIPE,
            limit=READ_LIMIT,
        )
        follower = cls(process)
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, "the follower process ended before it began following"
        assert json.loads(line)["ready"] is not None  # its start position, once fixed
        return follower

    async def read_until(self, done: Callable[[], bool], seconds: float = 60) -> None:
        """Read lines until ``done()``, or for ``seconds`` at most: what is then missing
        is what the checks report."""

        async def read() -> None:
            assert self.process.stdout is not None
            while not done():
                line = await self.process.stdout.readline()
                if not line:
                    return  # it ended: the checks say what it missed
                self.lines.append(json.loads(line))

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), seconds)

    def ids(self) -> set[str]:
        return {line["id"] for line in self.lines}

    async def kill(self) -> None:
        """SIGKILL, then the whole lines it had printed before it died."""
        if self.process.returncode is None:
            self.process.kill()
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), 30)
        await self.process.wait()
        *whole, _cut_short = rest.split(b"\n")  # the last line may not have been finished
        self.lines.extend(json.loads(line) for line in whole)


def _check(name: str, lines: list[dict[str, Any]], stored: set[str]) -> None:
    ids = [line["id"] for line in lines]
    doubled = len(ids) - len(set(ids))
    assert doubled == 0, f"{name}: {doubled} event(s) arrived twice"
    missing = stored - set(ids)
    assert not missing, f"{name}: {len(missing)} of {len(stored)} events never arrived"
    assert set(ids) == stored, f"{name}: events that are not stored arrived"
    order: dict[tuple[int, int], list[int]] = {}
    for line in lines:
        data = line["data"]
        if "task" in data:
            order.setdefault((data["proc"], data["task"]), []).append(data["i"])
    assert len(order) == PROCESSES * TASKS
    for key, indexes in order.items():
        assert indexes == list(range(EVENTS_PER_TASK)), f"{name}: task {key} out of order"


async def _two_followers_one_killed(url: str) -> None:
    await upgrade(url)
    steady = await FollowerProcess.start(url)
    first_life = await FollowerProcess.start(url)
    lives = [first_life]
    writers: list[asyncio.subprocess.Process] = []
    try:
        writers = list(await asyncio.gather(*(_writer(url, p) for p in range(PROCESSES))))
        for process in writers:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        written = asyncio.gather(*(_writer_done(p) for p in writers))
        steady_reading = asyncio.ensure_future(
            steady.read_until(lambda: len(steady.ids()) >= TOTAL)
        )

        await first_life.read_until(lambda: len(first_life.lines) >= TOTAL // 2)
        await first_life.kill()
        assert first_life.lines[-1]["cursor"] is not None
        second_life = await FollowerProcess.start(url, first_life.lines[-1]["cursor"])
        lives.append(second_life)
        # Not everything had been printed before the kill: the second life has work.
        assert TOTAL // 2 <= len(first_life.lines) < TOTAL, len(first_life.lines)
        await second_life.read_until(lambda: len(first_life.ids() | second_life.ids()) >= TOTAL)

        logged = await written
        await steady_reading
        await asyncio.sleep(0.5)  # anything arriving late (twice) is read by kill()
    finally:
        for life in [steady, *lives]:
            await life.kill()
        for process in writers:
            if process.returncode is None:
                process.kill()
                await process.wait()

    conn = await asyncpg.connect(_dsn(url))
    try:
        stored = {r["id"] for r in await conn.fetch("SELECT id FROM event_log")}
    finally:
        await conn.close()
    assert len(stored) == TOTAL
    acknowledged = {entry[0] for entries in logged for entry in entries}
    assert len(acknowledged) == PROCESSES * TASKS * EVENTS_PER_TASK
    assert acknowledged <= stored

    _check("the follower never killed", steady.lines, stored)
    _check("the follower killed and resumed", first_life.lines + second_life.lines, stored)


async def test_followers_resume_from_their_cursor_on_a_plain_table(postgres_only_url: str) -> None:
    await _two_followers_one_killed(postgres_only_url)


async def test_followers_resume_from_their_cursor_on_a_partitioned_table(
    partitioned_url: str,
) -> None:
    await _two_followers_one_killed(partitioned_url)
