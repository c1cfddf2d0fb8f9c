"""A reader's logger (``EventLogger.open(url, read_only=True)``) on every backend, and a
logger that fails to open: nothing runs in the background, nothing is created, writes
are refused by the database itself, and upkeep failures are one line each."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from event_log import EventLogger, RetentionPolicy, StorageError


async def test_a_reader_reads_and_the_database_refuses_its_writes(backend_url: str) -> None:
    async with EventLogger.open(backend_url) as writer:
        first = await writer.log_event("task.created", "c", task_id="t-1")
        if "memory" in backend_url or backend_url in ("sqlite+aiosqlite://",):
            pytest.skip("an in-memory database is private to its logger: no second reader")
        async with EventLogger.open(backend_url, read_only=True) as reader:
            assert reader.read_only
            assert not reader._upkeep.keeps_partitions  # no background upkeep
            assert [e.id for e in (await reader.list_events()).events] == [first.id]
            assert (await reader.get_task_events("t-1"))[0].id == first.id
            with pytest.raises(StorageError):
                await reader.log_event("task.created", "c")
            with pytest.raises(StorageError):
                await reader.prune_events(older_than_days=0)
        # The writer's own events are all there, and only they.
        assert await writer.count_events() == 1


async def test_an_in_memory_reader_is_never_migrated() -> None:
    # Its database is its own and new: with no schema, reading it is a StorageError.
    async with EventLogger.open("sqlite+aiosqlite://", read_only=True) as reader:
        assert reader.read_only
        with pytest.raises(StorageError, match="no such table"):
            await reader.list_events()


async def test_a_reader_never_creates_a_file_or_folder(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "events.db"
    with pytest.raises(StorageError, match="no database file at"):
        await EventLogger.open(f"sqlite+aiosqlite:///{target}", read_only=True)
    assert not target.parent.exists()


async def test_a_reader_leaves_an_empty_file_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    async with EventLogger.open(f"sqlite+aiosqlite:///{empty}", read_only=True) as reader:
        with pytest.raises(StorageError):
            await reader.count_events()  # no table: the schema was never made
    assert empty.stat().st_size == 0


async def test_a_reader_takes_no_retention_schedule(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await (await EventLogger.open(url)).close()
    with pytest.raises(ValueError, match="read-only"):
        await EventLogger.open(
            url, read_only=True, retention=RetentionPolicy(older_than_days=1, every_minutes=5)
        )


@pytest.mark.parametrize(
    "url",
    ["postgresql+asyncpg://u@127.0.0.1:1/x", "postgresql+psycopg://u@127.0.0.1:1/x"],
    ids=["asyncpg", "psycopg"],
)
async def test_a_logger_that_cannot_connect_starts_nothing(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = asyncio.all_tasks()
    with caplog.at_level(logging.DEBUG, logger="event_log"):
        with pytest.raises(StorageError, match="connecting to the database failed"):
            await EventLogger.open(url)
        await asyncio.sleep(0)
    assert caplog.records == []  # no background task logged anything
    assert asyncio.all_tasks() == before


async def test_an_upkeep_failure_is_one_line_with_the_traceback_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    async with EventLogger.open(url) as log:

        async def failing(policy: RetentionPolicy) -> int:
            raise StorageError("pruning failed: disk I/O error\n[SQL: DELETE ...]")

        log.apply_retention = failing  # type: ignore[method-assign]
        with caplog.at_level(logging.INFO, logger="event_log"):
            log._upkeep.prune_on_schedule(
                log.apply_retention, RetentionPolicy(older_than_days=1, every_minutes=60)
            )
            for _ in range(100):
                if log.retention_failures:
                    break
                await asyncio.sleep(0.01)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        line = errors[0].getMessage()
        assert line == (
            "event_log: scheduled prune failed (pruning failed: disk I/O error); "
            "trying again in 60 minutes"
        )
        assert errors[0].exc_info is None
        debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
        assert debug == []  # not at INFO
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="event_log"):
            log._upkeep.prune_on_schedule(
                log.apply_retention, RetentionPolicy(older_than_days=1, every_minutes=60)
            )
            for _ in range(100):
                if log.retention_failures > 1:
                    break
                await asyncio.sleep(0.01)
        assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)
