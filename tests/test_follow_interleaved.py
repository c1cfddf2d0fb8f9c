"""follow() on PostgreSQL under transactions that commit out of the order they began, and
through every write path.

Several raw sessions run transactions of a few rows each (plain INSERTs, the
server filling in what a writer leaves out; some in savepoints, some of those
rolled back to them), hold them open for random short times, and commit or
roll back, so commits land in an order unlike the order
of the transaction ids; a logger writes meanwhile too. A follower must yield
every committed row exactly once, no rolled-back row, and each session's rows
in the order that session committed them. Then followers resumed from cursors
the first one had at random points (and at its start) must yield exactly what
it yielded after that point, and nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from event_log import EventLogger, upgrade
from follow_helpers import started, take

pytestmark = pytest.mark.postgres

SESSIONS = 6
SECONDS = 3.0
RESUMED = 12  # followers resumed from cursors at random points


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _session(url: str, s: int, rng: random.Random, stop: asyncio.Event) -> list[list[str]]:
    """Transactions of one to three rows until ``stop``; the ids of each one it
    committed, in the order it committed them."""
    conn = await asyncpg.connect(_dsn(url))
    committed: list[list[str]] = []
    n = 0
    try:
        while not stop.is_set():
            ids: list[str] = []
            await conn.execute("BEGIN")
            for _ in range(rng.randint(1, 3)):
                row_id = str(uuid.uuid4())
                # Some rows go in a savepoint, and some of those are rolled back to it.
                savepoint = rng.random() < 0.3
                if savepoint:
                    await conn.execute("SAVEPOINT row")
                await conn.execute(
                    "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, "
                    '"timestamp") VALUES ($1, $2, $3, NULL, NULL, $4::jsonb, now())',
                    row_id,
                    "tool.called",
                    f"session-{s}",
                    json.dumps({"s": s, "n": n}),
                )
                n += 1
                if savepoint and rng.random() < 0.5:
                    await conn.execute("ROLLBACK TO SAVEPOINT row")
                else:
                    ids.append(row_id)
                if savepoint:
                    await conn.execute("RELEASE SAVEPOINT row")
            await asyncio.sleep(rng.choice([0, 0.001, 0.005, 0.02, 0.05]))
            if rng.random() < 0.1:
                await conn.execute("ROLLBACK")
            else:
                await conn.execute("COMMIT")
                if ids:
                    committed.append(ids)
            await asyncio.sleep(rng.choice([0, 0, 0.002, 0.01]))
    finally:
        await conn.close()
    return committed


async def _interleaved(url: str) -> None:
    await upgrade(url)
    rng = random.Random(11)
    async with (
        EventLogger.open(url, migrate=False) as reader,
        EventLogger.open(url, migrate=False) as writer,
    ):
        first = reader.follow()
        seen: list[tuple[str, dict[str, Any], str | None]] = []  # id, data, cursor after it

        async def follow() -> None:
            async for event in first:
                seen.append((event.id, event.data or {}, first.cursor))

        following = asyncio.ensure_future(follow())
        try:
            await started(first)
            at_start = first.cursor
            stop = asyncio.Event()
            sessions = [
                asyncio.ensure_future(_session(url, s, random.Random(rng.random()), stop))
                for s in range(SESSIONS)
            ]
            logged: list[list[str]] = []  # the ids of each write, in order

            async def log() -> None:
                i = 0
                while not stop.is_set():
                    if i % 4 == 3:
                        batch = [{"event_type": "tool.batched", "source": "logger"}] * 5
                        logged.append([e.id for e in await writer.log_events(batch)])
                    else:
                        logged.append([(await writer.log_event("tool.called", "logger")).id])
                    i += 1
                    await asyncio.sleep(rng.choice([0, 0.003, 0.01]))

            writing = asyncio.ensure_future(log())
            await asyncio.sleep(SECONDS)
            stop.set()
            committed = list(await asyncio.gather(*sessions))
            await writing
            last = await writer.log_event("task.completed", "logger")
            deadline = asyncio.get_running_loop().time() + 20
            while last.id not in {row_id for row_id, _, _ in seen}:
                assert asyncio.get_running_loop().time() < deadline, "the last event never came"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # anything arriving twice, late
        finally:
            following.cancel()
            await asyncio.gather(following, return_exceptions=True)

        ids = [row_id for row_id, _, _ in seen]
        transactions = [*committed, logged]
        expected = {last.id, *(row_id for txs in transactions for tx in txs for row_id in tx)}
        assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} event(s) came twice"
        assert set(ids) - expected == set(), "rows rolled back (or never written) came"
        assert expected - set(ids) == set(), f"{len(expected - set(ids))} committed rows never came"
        # Each writer's transactions in the order it committed them (the rows of one
        # transaction come in no particular order).
        for writer_number, txs in enumerate(transactions):
            tx_of = {row_id: n for n, tx in enumerate(txs) for row_id in tx}
            order = [tx_of[row_id] for row_id in ids if row_id in tx_of]
            assert order == sorted(order), f"writer {writer_number}: transactions out of order"

        # Resumed from cursors of the first follower: exactly what it yielded after them.
        points = sorted(rng.sample(range(len(seen) - 1), RESUMED))
        cursors = [(-1, at_start)] + [(k, seen[k][2]) for k in points]
        resumed = []
        for k, cursor in cursors:
            follower = writer.follow(cursor=cursor)
            rest = ids[k + 1 :]
            got = [e.id for e in await take(follower, len(rest), 30)]
            assert len(got) == len(set(got)), f"resumed after event {k}: an event came twice"
            assert set(got) == set(rest), (
                f"resumed after event {k} of {len(ids)}: {len(set(rest) - set(got))} missing, "
                f"{len(set(got) - set(rest))} not expected"
            )
            resumed.append(follower)
        marker = await writer.log_event("task.completed", "marker")
        for (k, _), follower in zip(cursors, resumed, strict=True):
            assert [e.id for e in await take(follower, 1)] == [marker.id], f"after event {k}"


async def test_interleaved_transactions_on_a_plain_table(postgres_only_url: str) -> None:
    await _interleaved(postgres_only_url)


async def test_interleaved_transactions_on_a_partitioned_table(partitioned_url: str) -> None:
    await _interleaved(partitioned_url)


async def test_every_write_path_is_followed(postgres_driver_url: str) -> None:
    """One row, a statement batch, emits the writer joins into a batch of more than
    255 rows (COPY) and a streamed ``log_events`` (COPY fed as rows are made): a
    follower of another logger yields each row once, and every row carries its
    transaction's id."""
    url = postgres_driver_url
    await upgrade(url)
    async with (
        EventLogger.open(url, migrate=False) as reader,
        EventLogger.open(url, migrate=False) as writer,
    ):
        follower = reader.follow()
        collecting = asyncio.ensure_future(take(follower, 1 + 255 + 1000 + 2000, 60))
        await started(follower)
        ids = [(await writer.log_event("tool.called", "one")).id]
        batch = [{"event_type": "tool.batched", "source": "statement"}] * 255
        ids += [e.id for e in await writer.log_events(batch)]
        ids += [writer.emit("tool.emitted", "emitted", data={"i": i}).id for i in range(1000)]
        await writer.flush()
        streamed = [{"event_type": "tool.streamed", "source": "stream"}] * 2000
        ids += [e.id for e in await writer.log_events(streamed)]
        got = [e.id for e in await collecting]
        assert writer.stats.failed == 0
    assert len(got) == len(set(got))
    assert set(got) == set(ids)
    conn = await asyncpg.connect(_dsn(url))
    try:
        without = await conn.fetchval("SELECT count(*) FROM event_log WHERE xid IS NULL")
        largest = await conn.fetchval(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM event_log "
            "WHERE source = 'emitted' GROUP BY xid) AS per_transaction"
        )
    finally:
        await conn.close()
    assert without == 0
    assert largest > 255  # the emits really went in a COPY


async def test_a_cursor_taken_while_reading_stored_events_resumes_there(
    postgres_driver_url: str,
) -> None:
    """A follower started after an event id reads the stored events after it (in pages)
    before the live ones; its cursor taken halfway through them, past a page, resumes
    with the rest of them and then the live events, each once, as the follower itself
    goes on."""
    url = postgres_driver_url
    await upgrade(url)
    async with EventLogger.open(url, migrate=False) as log:
        stored: list[str] = []
        for b in range(3):
            batch = [{"event_type": "tool.batched", "source": "s", "data": {"b": b}}] * 400
            stored += [e.id for e in await log.log_events(batch)]
        first = log.follow(cursor=stored[99])
        assert [e.id for e in await take(first, 700)] == stored[100:800]
        halfway = first.cursor
        live = [
            e.id for e in await log.log_events([{"event_type": "tool.live", "source": "l"}] * 10)
        ]
        resumed = log.follow(cursor=halfway)
        from_cursor = [e.id for e in await take(resumed, 410)]
        going_on = [e.id for e in await take(first, 410)]
        assert sorted(from_cursor) == sorted(going_on) == sorted(stored[800:] + live)
        assert from_cursor[:400] == stored[800:]  # the stored ones first, in their order
        marker = await log.log_event("task.completed", "marker")
        for follower in (first, resumed):
            assert [e.id for e in await take(follower, 1)] == [marker.id]
