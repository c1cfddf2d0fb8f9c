"""The databases kept at head between tests (``head_databases.py``, conftest's
``head_url``) give each test what a fresh upgrade leaves, whatever the test before
did: rows written, the commit counter moved on, the schema changed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from event_log import EventLogger
from head_databases import AdminLoop, HeadDatabase, MariadbHead, PostgresHead

# conftest's server backends, and the session fixture that keeps each one's database.
SERVERS = [
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("postgres-partitioned", marks=pytest.mark.postgres, id="postgres-partitioned"),
    pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb"),
]
KEPT = {
    "postgres": "_postgres_head",
    "postgres-partitioned": "_postgres_day_head",
    "mariadb": "_mariadb_head",
}


@pytest.fixture
async def head(
    head_url: str, request: pytest.FixtureRequest, admin_loop: AdminLoop
) -> AsyncIterator[tuple[HeadDatabase, HeadDatabase]]:
    """This session's head database of the backend, and one a fresh upgrade made beside it."""
    name = request.node.callspec.params["head_url"]
    kept: HeadDatabase = request.getfixturevalue(KEPT[name])
    fresh_name = f"{make_url(kept.url).database}_fresh"
    fresh: HeadDatabase
    if name == "mariadb":
        fresh = MariadbHead(request.getfixturevalue("mariadb_url"), fresh_name)
    else:
        partition = "day" if name == "postgres-partitioned" else None
        fresh = PostgresHead(request.getfixturevalue("postgres_url"), fresh_name, partition)
    await asyncio.to_thread(admin_loop.run, fresh.reset())
    yield kept, fresh
    await asyncio.to_thread(admin_loop.run, fresh.drop())


async def _count(url: str) -> int:
    async with EventLogger.open(url) as log:
        return await log.count_events()


@pytest.mark.parametrize("head_url", SERVERS, indirect=True)
async def test_a_reset_leaves_what_a_fresh_upgrade_leaves(
    head: tuple[HeadDatabase, HeadDatabase], admin_loop: AdminLoop
) -> None:
    kept, fresh = head

    async def reset_and_compare() -> None:
        await asyncio.to_thread(admin_loop.run, kept.reset())
        assert await asyncio.to_thread(admin_loop.run, kept.state()) == await asyncio.to_thread(
            admin_loop.run, fresh.state()
        )
        assert await _count(kept.url) == 0

    # Rows (and, on MariaDB, the commit counter): emptied in place.
    async with EventLogger.open(kept.url) as log:
        await log.log_events([{"event_type": "task.created", "source": "s"}] * 30)
        await log.log_event("task.completed", "s")
    assert await _count(kept.url) == 31
    await reset_and_compare()

    # A schema changed under the rows: made again.
    async with EventLogger.open(kept.url) as log:
        await log.log_event("task.created", "s")
        async with log.engine.begin() as conn:
            await conn.execute(text("CREATE INDEX ix_extra_source ON event_log (source)"))
    await reset_and_compare()
