"""The SQLite file sink: small batches commit on the loop, and fall back to the thread."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from event_log import EventLogger
from event_log import _sinks as sinks

pytestmark = pytest.mark.sqlite


async def test_a_lock_held_by_another_process_sends_the_batch_to_the_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        await log.log_event("task.created", "c")  # the inline connection exists now
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        try:
            pending = asyncio.ensure_future(log.log_event("task.started", "c"))
            await asyncio.sleep(0.3)
            # The loop was not blocked (we got here) and the write is waiting.
            assert not pending.done()
        finally:
            other.execute("COMMIT")
            other.close()
        event = await asyncio.wait_for(pending, timeout=5)
        assert await log.get_event(event.id) == event
        assert await log.count_events() == 2


async def test_checkpoints_run_in_the_background_every_so_many_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    threads: list[str] = []
    original = sinks.SQLiteFileSink._checkpoint

    def spy(self: sinks.SQLiteFileSink) -> None:
        threads.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(sinks, "CHECKPOINT_EVERY_ROWS", 30)
    monkeypatch.setattr(sinks.SQLiteFileSink, "_checkpoint", spy)
    async with EventLogger.open(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}") as log:
        sink = log._writer._sink
        assert isinstance(sink, sinks.SQLiteFileSink)

        async def checkpoint_done() -> None:
            pending = sink._checkpoint_pending
            if pending is not None:
                await asyncio.wrap_future(pending)

        for _ in range(9):  # inline commits, one row each
            await log.log_event("task.created", "c")
        for _ in range(4):  # 29, 49 -> checkpoint (0), 20, 40 -> checkpoint
            await log.log_events([{"event_type": "task.started", "source": "c"}] * 20)
            await checkpoint_done()
    assert len(threads) == 2
    assert all(name.startswith("event_log-checkpoint") for name in threads)


async def test_a_failing_inline_commit_raises_storage_error(tmp_path: Path) -> None:
    from event_log import StorageError

    path = tmp_path / "broken.db"
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        await log.log_event("task.created", "c")
        broken = sqlite3.connect(path)
        broken.execute("DROP TABLE event_log")
        broken.close()
        with pytest.raises(StorageError) as info:
            await log.log_event("task.created", "c")
        assert isinstance(info.value.__cause__, sqlite3.Error)
