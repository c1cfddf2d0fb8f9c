"""Faults provoked for real: SIGKILL mid-write, SIGTERM, a held lock, a full disk,
PostgreSQL connections killed under load. Run alone with ``pytest -m fault``.

The child programs live in ``tests/faults/``; each prints what it was promised
(ids whose ``log_event`` returned) so the parent can check it after the fault.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import sqlite3
import sys
from pathlib import Path

import asyncmy  # type: ignore[import-untyped]
import asyncpg
import pytest
from sqlalchemy.engine import make_url

import event_log
from event_log import EventLogger, StorageError
from event_log.backends.sqlite import _engine as engine_module

pytestmark = pytest.mark.fault

CHILDREN = Path(__file__).parent / "faults"
KILL_RUNS = 20


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def stored_ids(url: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are in the table, read with the raw driver (not the logger)."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        assert path is not None
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            rows = conn.execute("SELECT id, data, timestamp FROM event_log").fetchall()
        finally:
            conn.close()
    elif make_url(url).get_backend_name() == "mysql":
        parsed = make_url(url)
        my = await asyncmy.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username,
            password=parsed.password or "",
            database=parsed.database,
        )
        try:
            async with my.cursor() as cursor:
                await cursor.execute("SELECT id, data, `timestamp` FROM event_log")
                rows = list(await cursor.fetchall())
        finally:
            my.close()
    else:
        pg = await asyncpg.connect(_dsn(url))
        try:
            rows = await pg.fetch("SELECT id, data::text, timestamp FROM event_log")
        finally:
            await pg.close()
    all_ids = [row[0] for row in rows]
    assert len(all_ids) == len(set(all_ids)), "duplicated ids"
    for row in rows:  # nothing half-written: every row decodes whole
        assert row[1] is None or isinstance(json.loads(row[1]), dict)
        assert row[2] is not None
    return set(all_ids) & set(ids)


async def run_child(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILDREN / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_sigkill_loses_no_acknowledged_event(migratable_url: str) -> None:
    await event_log.upgrade(migratable_url)
    rng = random.Random(2026)
    acknowledged: list[str] = []
    for _ in range(KILL_RUNS):
        child = await run_child("crash_writer.py", migratable_url)
        assert child.stdout is not None
        target = rng.randint(1, 300)
        seen = 0
        while seen < target:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            if not line:
                break
            seen += 1
            acknowledged.append(line.decode().strip())
        child.send_signal(signal.SIGKILL)
        rest, _ = await child.communicate()
        # Lines printed before the kill were acknowledged too; a torn last line was not.
        for line in rest.decode().split("\n")[:-1]:
            acknowledged.append(line.strip())
        assert child.returncode == -signal.SIGKILL
    found = await stored_ids(migratable_url, acknowledged)
    assert found == set(acknowledged)
    print(f"\n{KILL_RUNS} SIGKILLs, {len(acknowledged)} acknowledged events all present")


async def test_sigterm_shutdown_writes_every_emitted_event(migratable_url: str) -> None:
    await event_log.upgrade(migratable_url)
    child = await run_child("term_emitter.py", migratable_url)
    assert child.stdout is not None
    emitted: list[str] = []
    while len(emitted) < 2_000:
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line, "the child ended early"
        emitted.append(line.decode().strip())
    child.send_signal(signal.SIGTERM)
    rest, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, err.decode()
    lines = rest.decode().split("\n")
    emitted += [line.strip() for line in lines[:-1] if line.strip()]
    assert await stored_ids(migratable_url, emitted) == set(emitted)


@pytest.mark.sqlite
async def test_a_lock_held_past_the_busy_timeout_fails_callers_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "locked.db"
    async with EventLogger.open(f"sqlite+aiosqlite:///{path}") as log:
        before = await log.log_event("task.created", "c")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="locked"):
                await log.log_event("task.started", "c")
            many = await asyncio.gather(
                *(log.log_event("task.started", "c") for _ in range(20)), return_exceptions=True
            )
            assert all(isinstance(r, StorageError) for r in many)
        finally:
            holder.execute("COMMIT")
            holder.close()
        after = await log.log_event("task.completed", "c")  # no restart needed
        assert await log.get_event(before.id) == before
        assert await log.get_event(after.id) == after
        assert log.stats.failed == 21


@pytest.mark.sqlite
async def test_a_full_disk_fails_writes_keeps_old_events_and_recovers(tmp_path: Path) -> None:
    child = await run_child("disk_full.py", str(tmp_path / "full.db"))
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    print("\ndisk full:", report)
    assert report["failed_with"] == "StorageError"
    assert report["failed_after"] > 0
    assert report["old_events_intact"] is True
    assert report["written_after_space_returned"] is True
    assert report["integrity"] == "ok"


async def test_postgres_connections_killed_under_load(postgres_only_url: str) -> None:
    async with EventLogger.open(postgres_only_url) as log:
        await log.log_event("system.info", "warm-up")
        acknowledged: list[str] = []
        failures = 0

        async def writer(n: int) -> None:
            nonlocal failures
            for i in range(40):
                try:
                    event = await log.log_event("tool.called", f"w{n}", data={"i": i})
                except StorageError:
                    failures += 1
                else:
                    acknowledged.append(event.id)
                await asyncio.sleep(0.002)

        async def killer() -> int:
            admin = await asyncpg.connect(_dsn(postgres_only_url))
            killed = 0
            try:
                for _ in range(30):
                    await asyncio.sleep(0.005)
                    killed += len(
                        await admin.fetch(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
            finally:
                await admin.close()
            return killed

        *_, killed = await asyncio.gather(*(writer(n) for n in range(8)), killer())
        assert killed > 0  # the fault really happened
        # The logger recovers by itself: new writes and reads work.
        after = await log.log_event("system.info", "after the kills")
        assert await log.get_event(after.id) == after
        assert await log.count_events(event_type="tool.called") >= len(acknowledged)
    found = await stored_ids(postgres_only_url, acknowledged)
    assert found == set(acknowledged)
    print(f"\n{killed} connections killed; {failures} writes failed, {len(found)} acknowledged")


def local_clusters() -> list[str]:
    """The versions of Debian's local PostgreSQL clusters (what pg_ctlcluster manages)."""
    root = Path("/etc/postgresql")
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


@pytest.mark.server_restart
async def test_postgres_server_restart(postgres_only_url: str) -> None:
    cluster = local_clusters()
    if not cluster or shutil.which("pg_ctlcluster") is None:
        pytest.skip("needs pg_ctlcluster to restart the local server")
    async with EventLogger.open(postgres_only_url) as log:
        before = await log.log_event("system.info", "before the restart")
        restart = await asyncio.create_subprocess_exec(
            "pg_ctlcluster", "--skip-systemctl-redirect", cluster[-1], "main", "restart"
        )
        assert await restart.wait() == 0
        # Pooled connections died with the server; the logger reconnects by itself.
        after = None
        for _ in range(50):
            try:
                after = await log.log_event("system.info", "after the restart")
                break
            except StorageError:  # the server may still be starting
                await asyncio.sleep(0.2)
        assert after is not None
        assert await log.get_event(before.id) == before
        assert await log.get_event(after.id) == after
