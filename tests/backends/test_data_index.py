"""The optional GIN index on ``data`` (PostgreSQL): built on demand, used by data_contains.

The plans are those of the statements the logger really issues: a cursor hook
runs ``EXPLAIN`` on each one just before it executes, on the same connection,
with sequential scans discouraged (a small table would otherwise be read whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from event_log import EventLogger, StorageError, admin, create_data_index
from event_log.backends.postgresql._data_index import DATA_INDEX_NAME

ROWS = 3000


async def _scalar(log: EventLogger, sql: str) -> Any:
    async with log.engine.begin() as conn:
        return (await conn.exec_driver_sql(sql)).scalar()


async def _exec(log: EventLogger, sql: str) -> None:
    async with log.engine.begin() as conn:
        await conn.exec_driver_sql(sql)


async def test_sqlite_has_nothing_to_build(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    async with EventLogger.open(url) as log:
        assert await create_data_index(log.engine) == "unsupported"
    assert await create_data_index(url) == "unsupported"


async def test_index_is_built_once_rebuilt_when_invalid_and_not_drift(
    postgres_only_url: str,
) -> None:
    with pytest.raises(StorageError, match="event_log"):
        await create_data_index(postgres_only_url)  # no table yet
    async with EventLogger.open(postgres_only_url) as log:
        assert await create_data_index(postgres_only_url) == "created"  # from a URL
        assert await create_data_index(log.engine) == "exists"
        await admin.check(log.engine)  # no SchemaDriftError: the index is optional
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind.
        await _exec(
            log,
            "UPDATE pg_index SET indisvalid = false "
            f"WHERE indexrelid = '{DATA_INDEX_NAME}'::regclass",
        )
        assert await create_data_index(log.engine) == "created"
        valid = f"SELECT indisvalid FROM pg_index WHERE indexrelid = '{DATA_INDEX_NAME}'::regclass"
        assert await _scalar(log, valid) is True


async def test_data_contains_uses_the_gin_index(postgres_only_url: str) -> None:
    plans: list[str] = []
    async with EventLogger.open(postgres_only_url) as log:
        await log.log_events(
            [
                {"event_type": "bid.submitted", "source": "a", "data": {"i": i, "k": f"k{i}"}}
                for i in range(ROWS)
            ]
        )
        assert await create_data_index(log.engine) == "created"
        await _exec(log, "ANALYZE event_log")

        def explain(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "@>" in statement:
                cursor.execute("SET enable_seqscan = off")
                cursor.execute("EXPLAIN " + statement, params)
                plans.append("\n".join(str(row[0]) for row in cursor.fetchall()))

        event.listen(log.engine.sync_engine, "before_cursor_execute", explain)
        wanted = {"k": "k1234"}
        assert await log.count_events(data_contains=wanted) == 1
        assert len((await log.list_events(data_contains=wanted)).events) == 1
        event.remove(log.engine.sync_engine, "before_cursor_execute", explain)
    assert len(plans) == 2
    for plan in plans:
        assert f"Bitmap Index Scan on {DATA_INDEX_NAME}" in plan, plan


@pytest.mark.postgres
async def test_a_partitioned_table_gets_the_index_partition_by_partition(
    partitioned_url: str,
) -> None:
    # CREATE INDEX CONCURRENTLY refuses a partitioned table: regression test.
    from datetime import UTC, datetime

    async with EventLogger.open(partitioned_url) as log:
        await log.log_event("bid.submitted", "a", data={"bid_sats": 42})
        await log.log_event(  # lands in the DEFAULT partition
            "bid.submitted", "a", data={"bid_sats": 42}, timestamp=datetime(2001, 1, 1, tzinfo=UTC)
        )
        assert await create_data_index(log.engine) == "created"
        assert await create_data_index(log.engine) == "exists"
        await log.ensure_partitions(ahead=30)  # partitions made later get theirs from PostgreSQL
        invalid_or_missing = (
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'event_log'::regclass AND NOT EXISTS ("
            " SELECT 1 FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid "
            " JOIN pg_am am ON am.oid = ic.relam "
            " WHERE x.indrelid = c.oid AND am.amname = 'gin' AND x.indisvalid)"
        )
        assert await _scalar(log, invalid_or_missing) == 0
        valid = f"SELECT indisvalid FROM pg_index WHERE indexrelid = '{DATA_INDEX_NAME}'::regclass"
        assert await _scalar(log, valid) is True
        assert await log.count_events(data_contains={"bid_sats": 42}) == 2
        await admin.check(log.engine)
