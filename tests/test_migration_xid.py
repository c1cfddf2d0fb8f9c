"""Revision 0004 on a populated PostgreSQL database: up to head, down to 0003, up again.

At 0003 every row carries its commit number (``seq``) and the counter row
holds the highest. Upgrading to head adds ``xid`` and drops the counter;
downgrading numbers the rows written since, after the highest number, and
restores the counter. Through every step each row stays as it was (id, type,
source, task, agent, data, timestamp), a row numbered at 0003 keeps its
number, at 0003 every row has a unique number with the counter at the
highest, and at head the schema matches the model (``alembic check``). On a
plain table and on one partitioned by day.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from event_log import EventLogger, admin
from follow_helpers import started, take

pytestmark = pytest.mark.postgres

BEFORE = "0003"
OLD_ROWS = 600
ROW_FIELDS = 'id, event_type, source, task_id, agent_id, data::text AS data, "timestamp", seq'


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(_dsn(url))


async def _rows(url: str) -> dict[str, dict[str, Any]]:
    """Every row by id: its fields as stored (data as text), seq included."""
    conn = await _connect(url)
    try:
        return {r["id"]: dict(r) for r in await conn.fetch(f"SELECT {ROW_FIELDS} FROM event_log")}
    finally:
        await conn.close()


def _without_seq(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row_id: {k: v for k, v in row.items() if k != "seq"} for row_id, row in rows.items()}


async def _layout(url: str) -> dict[str, Any]:
    """The table's kind ("r" plain, "p" partitioned), its columns, whether the counter
    table exists and the schema revision."""
    conn = await _connect(url)
    try:
        return {
            "kind": await conn.fetchval(
                "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('event_log')"
            ),
            "columns": {
                r["column_name"]: r["data_type"]
                for r in await conn.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = 'event_log'"
                )
            },
            "counter": await conn.fetchval("SELECT to_regclass('event_log_sequence') IS NOT NULL"),
            "revision": await conn.fetchval("SELECT version_num FROM alembic_version"),
        }
    finally:
        await conn.close()


async def _populate_at_0003(url: str) -> None:
    """Rows as a logger at 0003 left them: numbered 1..N in commit order (which is not
    quite time order), the counter at N."""
    rng = random.Random(4)
    now = datetime.now(UTC)
    records = []
    for i in range(OLD_ROWS):
        timestamp = now - timedelta(days=3) + timedelta(seconds=i * 400 + rng.randrange(600))
        data = None if i % 5 == 0 else json.dumps({"i": i, "note": "über ✓", "n": [1, 2.5]})
        records.append(
            (
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                ["task.created", "tool.called", "agent.joined"][i % 3],
                "old-writer",
                f"task-{i % 7}" if i % 2 else None,
                f"agent-{i % 5}" if i % 3 else None,
                data,
                timestamp,
                i + 1,
            )
        )
    conn = await _connect(url)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, "
                '"timestamp", seq) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)',
                records,
            )
            await conn.execute("UPDATE event_log_sequence SET last_seq = $1 WHERE id = 1", OLD_ROWS)
    finally:
        await conn.close()


async def _write_at_head(url: str) -> list[list[str]]:
    """Writes of a logger at head, and one of another writer (a plain INSERT of the
    seven columns): the ids of each write transaction, in the order they committed."""
    writes: list[list[str]] = []
    async with EventLogger.open(url, migrate=False) as log:
        for i in range(5):
            writes.append([(await log.log_event("tool.called", "new", data={"i": i})).id])
        batch = [
            {"event_type": "tool.batched", "source": "new", "data": {"b": i}} for i in range(40)
        ]
        writes.append([e.id for e in await log.log_events(batch)])
        copied = [
            {"event_type": "tool.copied", "source": "new", "data": {"c": i}} for i in range(300)
        ]
        writes.append([e.id for e in await log.log_events(copied)])
    plain = str(uuid.uuid4())
    conn = await _connect(url)
    try:
        await conn.execute(
            "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, "
            '"timestamp") VALUES ($1, $2, $3, NULL, NULL, NULL, now())',
            plain,
            "task.created",
            "plain-insert",
        )
    finally:
        await conn.close()
    writes.append([plain])
    return writes


async def _counter(url: str) -> int:
    conn = await _connect(url)
    try:
        value: int = await conn.fetchval("SELECT last_seq FROM event_log_sequence WHERE id = 1")
        return value
    finally:
        await conn.close()


async def _xids(url: str) -> dict[str, int | None]:
    conn = await _connect(url)
    try:
        return {r["id"]: r["xid"] for r in await conn.fetch("SELECT id, xid FROM event_log")}
    finally:
        await conn.close()


async def _round_trip(url: str, kind: str) -> None:
    head = admin.head_revision()
    assert head != BEFORE, f"head is still {BEFORE}: revision 0004 is not there yet"

    await _populate_at_0003(url)
    old = await _rows(url)
    assert len(old) == OLD_ROWS

    # Up to head: every row as it was, its number kept; xid added, the counter gone.
    await admin.upgrade(url)
    layout = await _layout(url)
    assert (layout["revision"], layout["kind"]) == (head, kind)
    assert layout["columns"].get("xid") == "bigint"
    assert layout["counter"] is False
    assert await _rows(url) == old
    await admin.check(url)  # raises SchemaDriftError on any difference from the model

    writes = await _write_at_head(url)
    new_ids = [row_id for write in writes for row_id in write]
    # A listing's cursor, to be used again after the round trip below.
    key = b"k" * 32
    async with EventLogger.open(url, migrate=False, cursor_key=key) as log:
        first_page = await log.list_events(limit=250, newest_first=False)
        rest = await log.list_events(limit=1000, newest_first=False, cursor=first_page.next_cursor)
    assert first_page.next_cursor is not None
    at_head = await _rows(url)
    assert {row_id: at_head[row_id] for row_id in old} == old
    assert len(at_head) == OLD_ROWS + len(new_ids)
    assert all(at_head[row_id]["seq"] is None for row_id in new_ids)
    xids = await _xids(url)
    assert all(xids[row_id] is not None for row_id in new_ids)  # the server's default
    # One transaction, one xid; a later write, a higher one.
    per_write = [{xids[row_id] for row_id in write} for write in writes]
    assert all(len(found) == 1 for found in per_write), per_write
    ordered = [xid for found in per_write for xid in found if xid is not None]
    assert ordered == sorted(ordered)

    # Down to 0003: every row kept; each numbered, uniquely, the counter at the highest.
    await admin.downgrade(url, BEFORE)
    layout = await _layout(url)
    assert (layout["revision"], layout["kind"]) == (BEFORE, kind)
    assert "xid" not in layout["columns"]
    assert layout["counter"] is True
    down = await _rows(url)
    assert _without_seq(down) == _without_seq(at_head)
    seqs = [row["seq"] for row in down.values()]
    assert None not in seqs
    assert len(set(seqs)) == len(seqs)
    assert await _counter(url) == max(seqs)
    assert {row_id: down[row_id]["seq"] for row_id in old} == {
        row_id: row["seq"] for row_id, row in old.items()
    }
    # The rows written at head come after the old ones, in the order they committed.
    assert min(down[row_id]["seq"] for row_id in new_ids) > OLD_ROWS
    write_of = {row_id: n for n, write in enumerate(writes) for row_id in write}
    by_number = sorted(new_ids, key=lambda row_id: down[row_id]["seq"])
    assert [write_of[row_id] for row_id in by_number] == sorted(write_of.values())

    # Up again: nothing changed, the schema matches, and a logger writes and follows.
    await admin.upgrade(url)
    layout = await _layout(url)
    assert (layout["revision"], layout["kind"]) == (head, kind)
    assert await _rows(url) == down
    await admin.check(url)
    async with EventLogger.open(url, migrate=False, cursor_key=key) as log:
        # The cursor issued before going down and up again reads on as it did.
        again = await log.list_events(limit=1000, newest_first=False, cursor=first_page.next_cursor)
        assert again.events == rest.events
        follower = log.follow()
        waiting = asyncio.ensure_future(take(follower, 1))
        await started(follower)
        event = await log.log_event("task.started", "after-round-trip")
        assert [e.id for e in await waiting] == [event.id]
        assert await log.count_events() == len(down) + 1


async def test_a_populated_plain_table_goes_to_head_and_back_keeping_every_row(
    postgres_only_url: str,
) -> None:
    await admin.upgrade(postgres_only_url, BEFORE)
    await _round_trip(postgres_only_url, "r")


async def test_a_populated_partitioned_table_goes_to_head_and_back_keeping_every_row(
    partitioned_url: str,
) -> None:
    """Partitioned by day at head, then taken down to 0003 before it is populated."""
    await admin.downgrade(partitioned_url, BEFORE)
    assert (await _layout(partitioned_url))["kind"] == "p"
    await _round_trip(partitioned_url, "p")
