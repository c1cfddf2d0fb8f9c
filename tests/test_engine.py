"""Engine factory: URL resolution, SQLite tuning, the shared in-memory database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import event_log
from event_log import DEFAULT_URL, EventLogError, EventLogger
from event_log._engine import create_engine, resolve_url
from event_log.backends import backend_for_url

pytestmark = pytest.mark.sqlite


def test_url_resolution_order() -> None:
    env = {"EVENT_LOG_URL": "sqlite+aiosqlite:///from-env.db"}
    assert resolve_url("sqlite+aiosqlite:///explicit.db", env).database == "explicit.db"
    assert resolve_url(None, env).database == "from-env.db"
    assert resolve_url(None, {}) == make_url(DEFAULT_URL)
    assert DEFAULT_URL == "sqlite+aiosqlite:///data/events.db"


@pytest.mark.parametrize(
    ("url", "memory"),
    [
        ("sqlite+aiosqlite://", True),
        ("sqlite+aiosqlite:///:memory:", True),
        ("sqlite+aiosqlite:///x.db", False),
        ("postgresql+asyncpg://u@h/db", False),
    ],
)
def test_memory_urls(url: str, memory: bool) -> None:
    parsed = make_url(url)
    assert backend_for_url(parsed).is_memory(parsed) is memory


async def test_open_reads_the_environment_and_creates_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "nested" / "deeper" / "events.db"
    monkeypatch.setenv("EVENT_LOG_URL", f"sqlite+aiosqlite:///{target}")
    async with EventLogger.open() as log:
        await log.log_event("system.info", "test")
    assert target.exists()


async def test_default_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with EventLogger.open() as log:
        await log.log_event("system.info", "test")
    assert (tmp_path / "data" / "events.db").exists()


async def test_file_sqlite_is_tuned_for_a_write_heavy_log(tmp_path: Path) -> None:
    engine = create_engine(make_url(f"sqlite+aiosqlite:///{tmp_path / 'tuned.db'}"))
    try:
        async with engine.connect() as conn:

            async def pragma(name: str) -> object:
                return (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()

            assert await pragma("journal_mode") == "wal"
            assert await pragma("busy_timeout") == 5000
            assert await pragma("synchronous") == 1  # NORMAL
            assert await pragma("foreign_keys") == 0
    finally:
        await engine.dispose()


async def test_in_memory_database_is_shared_by_every_session_for_the_loggers_life() -> None:
    async with EventLogger.open("sqlite+aiosqlite:///:memory:") as log:
        event = await log.log_event("task.created", "c")
        # Many concurrent readers and writers all see one database.
        results = await asyncio.gather(
            *(log.get_event(event.id) for _ in range(20)),
            *(log.log_event("task.started", "c") for _ in range(20)),
        )
        assert all(r is not None for r in results)
        assert await log.count_events() == 21
    async with EventLogger.open("sqlite+aiosqlite://") as fresh:
        assert await fresh.count_events() == 0


async def test_open_without_migrate_uses_the_existing_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'pre.db'}"
    await event_log.upgrade(url)
    async with EventLogger.open(url, migrate=False) as log:
        await log.log_event("task.created", "c")
        assert await log.count_events() == 1


async def test_a_caller_engine_is_used_and_never_disposed(tmp_path: Path) -> None:
    engine = create_engine(make_url(f"sqlite+aiosqlite:///{tmp_path / 'mine.db'}"))
    try:
        await event_log.upgrade(engine)
        async with EventLogger(engine) as log:
            await log.log_event("task.created", "c")
        async with EventLogger(engine) as again:
            assert await again.count_events() == 1
    finally:
        await engine.dispose()


def test_emit_from_a_thread_before_the_logger_knows_its_loop() -> None:
    engine = create_engine(make_url("sqlite+aiosqlite://"))
    log = EventLogger(engine)  # made outside any event loop
    with pytest.raises(EventLogError, match="event loop"):
        log.emit("task.created", "c")
    assert log.stats.queued == 0


def test_bad_logger_settings_are_refused() -> None:
    engine = create_engine(make_url("sqlite+aiosqlite://"))
    with pytest.raises(ValueError, match=">= 1"):
        EventLogger(engine, max_data_bytes=0)


async def test_a_logger_belongs_to_one_event_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'loops.db'}"
    async with EventLogger.open(url) as log:
        await log.log_event("task.created", "c")

        def use_from_another_loop() -> None:
            async def attempt() -> None:
                await log.log_event("task.created", "c")

            asyncio.run(attempt())

        with pytest.raises(EventLogError, match="another event loop"):
            await asyncio.to_thread(use_from_another_loop)
