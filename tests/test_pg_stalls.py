"""A PostgreSQL transaction left open elsewhere delays no other writer and no follower.

No write transaction takes a lock that other writers wait for, and follow()
reads what became visible between two snapshots, so:

- a write held open by hand (the library's own write on a logger's own
  connection, inside a ``BEGIN`` the test never ends until it is done) does
  not slow another process's ``log_event``;
- nor does a writer process stopped with SIGSTOP in the middle of a large
  batch's ``COPY``; once it goes on, every one of its events is stored once;
- a transaction idle in the same database (holding a row of its own) and one
  idle in another database (holding just a transaction id) delay none of the
  events a follower is waiting for; the held row arrives once when it commits.

Latency bounds are loose (a noisy two-core machine), and the held transactions
last several times longer than the bounds, so a writer that waits for them
fails plainly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from event_log import Event, EventLogger, upgrade
from follow_helpers import started, take
from pg_helpers import pg_sink, server_pid

pytestmark = pytest.mark.postgres

PROCS = Path(__file__).parent / "procs"
HOLD = 5.0  # how long a transaction is kept open elsewhere
WRITES = 50  # log_event calls of the timed writer process
SLOWEST = 1.5  # no log_event may take this long while the other transaction is open
BATCH = 5000  # the stopped writer's batch size (its COPY path)
BATCH_APP = "event-log-stalled-batch-writer"


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@asynccontextmanager
async def _session(url: str, database: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection of the test's own (not a logger's)."""
    conn = await asyncpg.connect(_dsn(url, database))
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def _process(script: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A process of ``tests/procs``, once it printed ``ready``; killed on the way out
    if it is still running (and let go on first, should it be stopped)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROCS / script),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert await _line(process, 60) == b"ready\n"
        yield process
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            await process.wait()


async def _line(process: asyncio.subprocess.Process, seconds: float) -> bytes:
    assert process.stdout is not None
    return await asyncio.wait_for(process.stdout.readline(), seconds)


async def _say(process: asyncio.subprocess.Process, line: bytes) -> None:
    assert process.stdin is not None
    process.stdin.write(line)
    await process.stdin.drain()


async def _timed_writes(writer: asyncio.subprocess.Process, still_held: Any) -> dict[str, Any]:
    """Let the timed writer go while another transaction is held open; its result.

    Waits up to ``HOLD`` s for the writer to finish; ``still_held()`` is then
    awaited, before the caller ends the held transaction, and must confirm
    that the transaction really stayed open all along.
    """
    began = time.monotonic()
    await _say(writer, b"go\n")
    try:
        line: bytes | None = await _line(writer, HOLD)
    except TimeoutError:
        line = None
    waited = time.monotonic() - began
    await still_held()
    return {"line": line, "waited": waited}


def _check_latency(result: dict[str, Any], line: bytes, what: str) -> list[str]:
    written = json.loads(line)
    seconds: list[float] = written["seconds"]
    assert len(seconds) == WRITES
    slowest = max(seconds)
    assert result["line"] is not None, (
        f"the other process's {WRITES} log_event calls were not done after {HOLD:g} s "
        f"while {what}; the slowest took {slowest:.2f} s"
    )
    assert slowest < SLOWEST, f"slowest log_event took {slowest:.2f} s while {what}"
    assert statistics.median(seconds) < 0.2, seconds
    ids: list[str] = written["ids"]
    return ids


async def _held_xid(admin: asyncpg.Connection, pid: int) -> str | None:
    """The transaction id server process ``pid`` holds, None when it holds none."""
    xid: str | None = await admin.fetchval(
        "SELECT backend_xid::text FROM pg_stat_activity WHERE pid = $1", pid
    )
    return xid


async def test_a_write_held_open_delays_no_other_writer(postgres_driver_url: str) -> None:
    """A logger's own write, held inside a transaction the test keeps open, does not
    hold up another process's ``log_event``; rolled back, it leaves nothing."""
    await _held_write(postgres_driver_url)


async def test_a_write_held_open_delays_no_other_writer_on_a_partitioned_table(
    partitioned_url: str,
) -> None:
    await _held_write(partitioned_url)


async def _held_write(url: str) -> None:
    await upgrade(url)
    async with (
        _process("latency_writer.py", url, str(WRITES)) as writer,
        EventLogger.open(url, migrate=False) as holder,
        _session(url) as admin,
    ):
        await holder.log_event("system.info", "holder")  # the sink holds its connection now
        sink = pg_sink(holder)
        driver = sink._driver
        pid = server_pid(sink)
        await sink._command(driver, "BEGIN")
        try:
            # The sink's write runs inside that transaction: its row (and whatever
            # else a write takes) stays uncommitted.
            held = await holder.log_event("tool.called", "holder", data={"held": True})
            xid = await _held_xid(admin, pid)
            assert xid is not None, "the held write did not stay inside an open transaction"

            async def still_held() -> None:
                assert await _held_xid(admin, pid) == xid, "the held transaction ended early"

            result = await _timed_writes(writer, still_held)
        finally:
            await sink._command(driver, "ROLLBACK")
        line = result["line"] or await _line(writer, 60)
        ids = _check_latency(result, line, "another write was held open")
        assert await writer.wait() == 0
        stored = {
            r["id"]
            for r in await admin.fetch(
                "SELECT id FROM event_log WHERE source IN ('latency-writer', 'holder')"
            )
        }
    assert set(ids) <= stored
    assert held.id not in stored  # rolled back
    assert len(stored) == WRITES + 2  # the timed writes, its warm-up and the holder's first


async def _stop_inside_a_transaction(
    process: asyncio.subprocess.Process, admin: asyncpg.Connection
) -> tuple[int, str]:
    """SIGSTOP ``process`` while its server process holds a transaction id; that
    server process's pid and the id.

    The writer spends most of its time inside a batch's transaction, but a stop
    can land just after a commit; it is then let go and tried again. The check
    that the transaction outlived the stop by half a second is what proves
    the stop landed inside it.
    """
    find = (
        "SELECT pid, backend_xid::text AS xid FROM pg_stat_activity "
        "WHERE application_name = $1 AND backend_xid IS NOT NULL"
    )
    for _ in range(40):
        deadline = time.monotonic() + 10
        while (found := await admin.fetchrow(find, BATCH_APP)) is None:
            assert time.monotonic() < deadline, "the batch writer never opened a transaction"
            await asyncio.sleep(0.001)
        os.kill(process.pid, signal.SIGSTOP)
        await asyncio.sleep(0.5)
        if await _held_xid(admin, found["pid"]) == found["xid"]:
            return found["pid"], found["xid"]
        os.kill(process.pid, signal.SIGCONT)
    raise AssertionError("40 stops of the batch writer all landed outside its transactions")


async def test_a_writer_stopped_inside_its_copy_delays_no_other_writer(
    postgres_only_url: str,
) -> None:
    """A process writing large batches (COPY) is stopped with SIGSTOP while its
    transaction is open: another process's ``log_event`` stays fast; let go, the
    stopped process stores every batch it wrote, each event once."""
    url = postgres_only_url
    await upgrade(url)
    async with (
        _process("latency_writer.py", url, str(WRITES)) as writer,
        _process("batch_writer.py", url, BATCH_APP, str(BATCH)) as batches,
        _session(url) as admin,
    ):
        pid, xid = await _stop_inside_a_transaction(batches, admin)
        try:

            async def still_held() -> None:
                assert await _held_xid(admin, pid) == xid, "the stopped transaction ended"

            result = await _timed_writes(writer, still_held)
        finally:
            os.kill(batches.pid, signal.SIGCONT)
        line = result["line"] or await _line(writer, 60)
        ids = _check_latency(result, line, "another process was stopped inside a COPY")
        assert await writer.wait() == 0

        await _say(batches, b"stop\n")
        done = json.loads(await _line(batches, 120))
        assert await batches.wait() == 0
        per_batch = {
            int(r["b"]): (r["n"], r["distinct_i"], r["low"], r["high"])
            for r in await admin.fetch(
                "SELECT data->>'b' AS b, count(*) AS n, "
                "count(DISTINCT data->>'i') AS distinct_i, "
                "min((data->>'i')::int) AS low, max((data->>'i')::int) AS high "
                "FROM event_log WHERE source = 'batch-writer' GROUP BY 1"
            )
        }
        stored_ids = {
            r["id"]
            for r in await admin.fetch("SELECT id FROM event_log WHERE source = 'latency-writer'")
        }
    assert done["size"] == BATCH
    assert done["batches"] >= 1
    # Every batch whole and once: the stopped one too, after it went on.
    assert per_batch == {b: (BATCH, BATCH, 0, BATCH - 1) for b in range(done["batches"])}
    assert set(ids) <= stored_ids
    assert len(stored_ids) == WRITES + 1


# -- a follower and transactions idle elsewhere ----------------------------------------------

FOLLOWED_WRITES = 20


async def _until(seen: list[tuple[Event, float]], ids: set[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ids <= {event.id for event, _ in seen}:
        if time.monotonic() > deadline:
            missing = ids - {event.id for event, _ in seen}
            raise AssertionError(f"{len(missing)} event(s) never arrived within {seconds:g} s")
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("order", ["follow-first", "transactions-first"])
async def test_transactions_idle_elsewhere_delay_no_followed_event(
    postgres_only_url: str, order: str
) -> None:
    """A session of the same database holding an uncommitted row, and one of another
    database holding only a transaction id, stay idle in their transactions for
    ``HOLD`` s: every event another logger writes meanwhile reaches the follower
    at once; the held row arrives once, when it commits; nothing arrives twice.

    The follower begins before the transactions or while they are open."""
    url = postgres_only_url
    await upgrade(url)
    held_id = str(uuid.uuid4())
    seen: list[tuple[Event, float]] = []
    async with (
        EventLogger.open(url, migrate=False) as reader,
        EventLogger.open(url, migrate=False) as writer,
        _session(url) as same_database,
        _session(url, "postgres") as other_database,
    ):
        follower = reader.follow()

        async def follow() -> None:
            async for event in follower:
                seen.append((event, time.monotonic()))

        async def open_transactions() -> float:
            await same_database.execute("BEGIN")
            await same_database.execute(
                "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, "
                '"timestamp") VALUES ($1, $2, $3, NULL, NULL, $4::jsonb, now())',
                held_id,
                "tool.called",
                "held-elsewhere",
                json.dumps({"held": True}),
            )
            await other_database.execute("BEGIN")
            assert await other_database.fetchval("SELECT pg_current_xact_id()::text")
            return time.monotonic()

        following = asyncio.ensure_future(follow())
        try:
            if order == "transactions-first":
                opened = await open_transactions()
                await started(follower)
            else:
                await started(follower)
                opened = await open_transactions()

            returned: dict[str, float] = {}
            calls: list[float] = []
            for i in range(FOLLOWED_WRITES):
                began = time.monotonic()
                event = await writer.log_event("tool.called", "followed", data={"i": i})
                returned[event.id] = time.monotonic()
                calls.append(returned[event.id] - began)
                await asyncio.sleep(0.15)
            await _until(seen, set(returned), 10)
            assert held_id not in {event.id for event, _ in seen}  # not committed yet
            # Both transactions were open the whole time.
            assert await same_database.fetchval("SELECT pg_current_xact_id_if_assigned()::text")
            assert time.monotonic() - opened < HOLD + 5
            await asyncio.sleep(max(0.0, HOLD - (time.monotonic() - opened)))

            delays = {
                event.id: at - returned[event.id] for event, at in seen if event.id in returned
            }
            slowest = max(delays.values())
            assert slowest < 1, f"an event took {slowest:.2f} s to reach the follower"
            assert statistics.median(delays.values()) < 0.2, sorted(delays.values())
            assert max(calls) < SLOWEST, f"a log_event took {max(calls):.2f} s"

            await same_database.execute("COMMIT")
            await _until(seen, {held_id}, 5)
            await other_database.execute("ROLLBACK")
            last = await writer.log_event("tool.called", "followed", data={"i": FOLLOWED_WRITES})
            await _until(seen, {last.id}, 5)
            await asyncio.sleep(0.5)  # nothing more arrives
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

    ids = [event.id for event, _ in seen]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert set(ids) == {*returned, held_id, last.id}
    followed = [(event.data or {})["i"] for event, _ in seen if event.source == "followed"]
    assert followed == list(range(FOLLOWED_WRITES + 1))  # in the order they were written


async def test_a_cursor_taken_while_a_transaction_was_open_resumes_with_its_row(
    postgres_driver_url: str,
) -> None:
    """A follower's cursor taken while another session's row was still uncommitted:
    resumed from it (by another logger), a follower yields that row once it is
    committed, and the events after it, each once; so do cursors taken before the
    first event (the start) and after everything."""
    url = postgres_driver_url
    await upgrade(url)
    held_id = str(uuid.uuid4())
    async with (
        EventLogger.open(url, migrate=False) as reader,
        EventLogger.open(url, migrate=False) as writer,
        EventLogger.open(url, migrate=False) as other,
        _session(url) as elsewhere,
    ):
        first = reader.follow()
        taking = asyncio.ensure_future(take(first, 1))
        await started(first)
        at_start = first.cursor
        assert at_start is not None
        await elsewhere.execute("BEGIN")
        await elsewhere.execute(
            "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, "
            '"timestamp") VALUES ($1, $2, $3, NULL, NULL, NULL, now())',
            held_id,
            "tool.called",
            "held-elsewhere",
        )
        a = await writer.log_event("tool.called", "w", data={"n": "a"})
        assert [e.id for e in await taking] == [a.id]
        while_open = first.cursor
        await elsewhere.execute("COMMIT")
        b = await writer.log_event("tool.called", "w", data={"n": "b"})
        assert {e.id for e in await take(first, 2)} == {held_id, b.id}
        at_end = first.cursor
        m = await writer.log_event("tool.called", "w", data={"n": "m"})

        expected = {
            "start": (at_start, {a.id, held_id, b.id, m.id}),
            "while open": (while_open, {held_id, b.id, m.id}),
            "end": (at_end, {m.id}),
        }
        resumed = {name: other.follow(cursor=cursor) for name, (cursor, _) in expected.items()}
        for name, (_, ids) in expected.items():
            got = [e.id for e in await take(resumed[name], len(ids))]
            assert sorted(got) == sorted(ids), f"resumed from the cursor at {name}"
        # Nothing more is waiting: the next event each one yields is a new one.
        z = await writer.log_event("tool.called", "w", data={"n": "z"})
        for name, follower in [("first", first), *resumed.items()]:
            got = [e.id for e in await take(follower, 1)]
            assert got == ([m.id] if name == "first" else [z.id]), f"{name}: an event came twice"
