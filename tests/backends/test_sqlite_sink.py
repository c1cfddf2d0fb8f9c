"""The SQLite file sink: small batches commit on the loop, and fall back to the thread."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from event_log import EventLogger
from event_log.backends.sqlite import _sink as sinks

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


async def test_prune_gives_the_freed_space_back_to_the_file_system(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    path = tmp_path / "reclaim.db"
    old = datetime.now(UTC) - timedelta(days=60)
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        rows = [
            {
                "event_type": "tool.called",
                "source": "a",
                "task_id": f"t{i % 50}",
                "data": {"pad": "x" * 300, "i": i},
                # The older half was written first, as in a real log.
                "timestamp": old + timedelta(seconds=i) if i < 10_000 else None,
            }
            for i in range(20_000)
        ]
        for start in range(0, len(rows), 2_000):
            batch = rows[start : start + 2_000]
            await log.log_events([{k: v for k, v in r.items() if v is not None} for r in batch])
        await log.flush()
        conn = sqlite3.connect(path)

        async def checkpointed_size() -> int:
            # The background checkpointer may be busy: retry until the WAL is folded in.
            while conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            return path.stat().st_size

        assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL
        before = await checkpointed_size()
        assert await log.prune_events(30) == 10_000
        after = await checkpointed_size()
        assert conn.execute("PRAGMA freelist_count").fetchone() == (0,)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        conn.close()
        assert after <= before * 0.6, (before, after)
        assert await log.count_events() == 10_000
        assert await log.reclaim_space() == 0  # nothing left to give back


async def test_each_reclaim_step_frees_a_full_step_of_pages_and_the_file_shrinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the sqlite3 module stepped PRAGMA incremental_vacuum once, so
    # every step freed one page and reclaiming took a transaction per page.
    from event_log import _retention

    monkeypatch.setattr(_retention, "RECLAIM_PAGES_PER_STEP", 100)
    steps: list[int] = []
    reclaim = sinks.SQLiteFileSink.reclaim

    async def counted(self: sinks.SQLiteFileSink, pages: int) -> int:
        freed = await reclaim(self, pages)
        steps.append(freed)
        return freed

    monkeypatch.setattr(sinks.SQLiteFileSink, "reclaim", counted)
    path = tmp_path / "steps.db"
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        await log.log_events(
            [{"event_type": "tool.called", "source": "a", "data": {"pad": "x" * 500}}] * 5_000
        )
        await log.flush()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("DELETE FROM event_log")
        free = other.execute("PRAGMA freelist_count").fetchone()[0]
        assert free > 300
        size_before = path.stat().st_size

        assert await log.reclaim_space() == free
        # Steps are bounded by count and by time, so only their shape is certain.
        assert sum(steps) == free
        assert steps[-1] == 0
        assert max(steps) <= 100
        assert max(steps) > 1
        assert other.execute("PRAGMA freelist_count").fetchone() == (0,)
        # The last step started a checkpoint, which makes the file itself shorter.
        for _ in range(100):
            if path.stat().st_size < size_before / 2:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size < size_before / 2
        other.close()
