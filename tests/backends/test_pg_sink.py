"""The PostgreSQL sink: its held connection, one-statement batches and COPY batches,
through each driver (asyncpg, psycopg 3)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from event_log import EventLogger, StorageError
from event_log.backends.postgresql._sink import PG_STATEMENT_MAX_ROWS, PostgresSink
from pg_helpers import make_batch, pg_sink, server_pid

pytestmark = pytest.mark.postgres

LARGE = 4 * PG_STATEMENT_MAX_ROWS  # a COPY batch


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _stored(url: str) -> list[tuple[str, int, int | None]]:
    """(id, xid, seq) of every row, in the order followers read: (xid, id)."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        return [
            (r["id"], r["xid"], r["seq"])
            for r in await conn.fetch("SELECT id, xid, seq FROM event_log ORDER BY xid, id")
        ]
    finally:
        await conn.close()


async def test_small_and_large_batches_are_one_transaction_each_in_order(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        assert isinstance(log._writer._sink, PostgresSink)
        sizes = [1, PG_STATEMENT_MAX_ROWS, PG_STATEMENT_MAX_ROWS + 1, LARGE + 7]
        written = []
        for size in sizes:
            written += await log.log_events(make_batch(size))
        stored = await _stored(postgres_driver_url)
    assert [i for i, _, _ in stored] == [e.id for e in written]
    assert {seq for _, _, seq in stored} == {None}  # no counter on PostgreSQL
    xids = [xid for _, xid, _ in stored]
    assert sorted(set(xids)) == list(dict.fromkeys(xids))  # one id per batch, increasing
    assert [xids.count(x) for x in dict.fromkeys(xids)] == sizes


async def test_large_batches_beside_concurrent_writers_are_whole_transactions(
    postgres_driver_url: str,
) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        bulk_ids: list[list[str]] = []

        async def single(n: int) -> None:
            for i in range(30):
                await log.log_event("tool.called", f"single-{n}", data={"i": i})

        async def bulk(n: int) -> None:
            for _ in range(3):
                events = await log.log_events(make_batch(LARGE + n, source=f"bulk-{n}"))
                bulk_ids.append([e.id for e in events])

        await asyncio.gather(*(single(n) for n in range(10)), *(bulk(n) for n in range(3)))
        total = 10 * 30 + sum(3 * (LARGE + n) for n in range(3))
        assert await log.count_events() == total
        assert log.stats.written == total
    xid_of = {event_id: xid for event_id, xid, _ in await _stored(postgres_driver_url)}
    assert len(xid_of) == total
    assert None not in xid_of.values()
    for ids in bulk_ids:  # each call all or nothing: one transaction
        assert len({xid_of[i] for i in ids}) == 1


async def test_a_lost_connection_is_replaced(postgres_driver_url: str) -> None:
    async with EventLogger.open(postgres_driver_url) as log:
        await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        admin = await asyncpg.connect(_dsn(postgres_driver_url))
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.1)  # the termination reaches the client
        # Small and large batches both go through on a new connection.
        await log.log_event("task.started", "c")
        await log.log_events(make_batch(PG_STATEMENT_MAX_ROWS + 1))
        await log.log_events(make_batch(LARGE))
        assert server_pid(sink) != pid
        assert await log.count_events() == 2 + PG_STATEMENT_MAX_ROWS + 1 + LARGE


async def test_a_duplicate_id_fails_only_its_batch_and_keeps_the_connection(
    postgres_driver_url: str,
) -> None:
    from event_log._models import prepare_event

    async with EventLogger.open(postgres_driver_url) as log:
        first = await log.log_event("task.created", "c")
        sink = pg_sink(log)
        pid = server_pid(sink)
        row = prepare_event("task.created", "c", max_data_bytes=100).row
        for size in (1, PG_STATEMENT_MAX_ROWS + 1):
            rows = [prepare_event("task.started", "c", max_data_bytes=100).row for _ in range(size)]
            rows[-1] = (first.id, *row[1:])
            with pytest.raises(StorageError):
                await log._writer.write(rows)
        await log.log_event("task.completed", "c")
        assert server_pid(sink) == pid  # rolled back, not reconnected
        assert await log.count_events() == 2
