"""Alembic migrations: upgrade()/CLI round trips, offline SQL, drift check, adoption.

Every database test runs on file SQLite, PostgreSQL and MariaDB (``migratable_url``).
The CLI tests run the real ``alembic`` command from the repository root.

Adoption is of the original system's table, which only ever existed on SQLite
(and PostgreSQL); its DDL cannot even be created on MariaDB (a TEXT primary
key), so the adoption tests that need such a table are strict xfails there.

Revisions are frozen: they import nothing from ``event_log``, so the timestamp
and data converters are tested twice, as the library has them
(``event_log._adopt``, which importing an original database uses) and as
revision 0001 keeps them; the row conversion only the revision has.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import event_log
from event_log import EventLogger, StorageError
from event_log._adopt import normalize_data, normalize_timestamp
from event_log._engine import create_engine
from event_log._migrate import alembic_config, script_location
from event_log._schema import Base
from event_log.backends.sqlite._types import TIMESTAMP_TEXT_WIDTH, format_utc

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAD = "0004"
NEW_INDEXES = {
    "ix_event_log_timestamp_id",
    "ix_event_log_task_id_timestamp_id",
    "ix_event_log_agent_id_timestamp_id",
    "ix_event_log_event_type_timestamp_id",
    "ix_event_log_seq",
}
# PostgreSQL orders by transaction ids instead of seq (revision 0004).
PG_INDEXES = NEW_INDEXES - {"ix_event_log_seq"} | {"ix_event_log_xid_id"}


def head_indexes(url: str) -> set[str]:
    """The indexes on event_log at head for ``url``'s kind of database."""
    return PG_INDEXES if url.startswith("postgresql") else NEW_INDEXES


ORIGINAL_INDEXES = {
    "idx_event_log_task",
    "idx_event_log_agent",
    "idx_event_log_type",
    "idx_event_log_time",
}
# The original system's DDL, verbatim.
ORIGINAL_DDL = [
    "CREATE TABLE IF NOT EXISTS event_log (id TEXT PRIMARY KEY, event_type TEXT NOT NULL, "
    "source TEXT NOT NULL, task_id TEXT, agent_id TEXT, data TEXT, timestamp TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idx_event_log_task ON event_log(task_id)",
    "CREATE INDEX IF NOT EXISTS idx_event_log_agent ON event_log(agent_id)",
    "CREATE INDEX IF NOT EXISTS idx_event_log_type ON event_log(event_type)",
    "CREATE INDEX IF NOT EXISTS idx_event_log_time ON event_log(timestamp)",
]


# -- helpers ----------------------------------------------------------------------------------


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_mariadb(url: str) -> bool:
    return make_url(url).get_backend_name() in ("mysql", "mariadb")


def head_tables(url: str) -> set[str]:
    """The tables at head; on SQLite also 0003's, which holds the original's index names."""
    if url.startswith("postgresql"):
        return {"alembic_version", "event_log"}
    tables = {"alembic_version", "event_log", "event_log_sequence"}
    return tables | {"event_log_original_index_names"} if is_sqlite(url) else tables


async def execute_on(url: str, *statements: str) -> None:
    engine = create_engine(make_url(url))
    try:
        async with engine.begin() as conn:
            for sql in statements:
                await conn.execute(sa.text(sql))
    finally:
        await engine.dispose()


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database
    return database


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def schema_of(engine: AsyncEngine) -> dict[str, set[str]]:
    """Table name -> its index names (alembic_version included when present)."""

    def inspect(conn: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(conn)
        return {
            table: {str(index["name"]) for index in inspector.get_indexes(table)}
            for table in inspector.get_table_names()
        }

    async with engine.connect() as conn:
        return await conn.run_sync(inspect)


async def schema_at(url: str) -> dict[str, set[str]]:
    engine = create_engine(make_url(url))
    try:
        return await schema_of(engine)
    finally:
        await engine.dispose()


async def alembic_on(url: str, action: str, revision: str) -> None:
    """Run an Alembic command on a connection we hand in (connection sharing)."""
    engine = create_engine(make_url(url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(
                lambda sync: getattr(command, action)(alembic_config(sync), revision)
            )
    finally:
        await engine.dispose()


def alembic_cli(
    *args: str, url: str | None = None, env_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``alembic`` command, run from the repository root."""
    script = Path(sys.executable).with_name("alembic")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "alembic"]
    if url is not None:
        argv += ["-x", f"url={url}"]
    env = {k: v for k, v in os.environ.items() if k != "EVENT_LOG_URL"}
    if env_url is not None:
        env["EVENT_LOG_URL"] = env_url
    return subprocess.run(
        [*argv, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def revision_module(revision: str) -> Any:
    """A revision's module as Alembic loads it, for the helpers frozen into it."""
    script = ScriptDirectory(str(script_location())).get_revision(revision)
    assert script is not None
    return script.module


def offline_sql() -> str:
    """``alembic upgrade head --sql`` in this process, for ``$EVENT_LOG_URL``'s dialect."""
    config = alembic_config()
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    return config.output_buffer.getvalue()


# -- upgrade() and downgrade ------------------------------------------------------------------


async def test_upgrade_downgrade_and_upgrade_again(migratable_url: str) -> None:
    await event_log.upgrade(migratable_url)
    schema = await schema_at(migratable_url)
    assert set(schema) == head_tables(migratable_url)
    assert schema["event_log"] == head_indexes(migratable_url)

    await alembic_on(migratable_url, "downgrade", "base")
    assert set(await schema_at(migratable_url)) == {"alembic_version"}

    await alembic_on(migratable_url, "upgrade", "head")
    assert (await schema_at(migratable_url))["event_log"] == head_indexes(migratable_url)


async def test_upgrade_is_idempotent_and_leaves_a_callers_engine_open(
    migratable_url: str,
) -> None:
    engine = create_engine(make_url(migratable_url))
    try:
        await event_log.upgrade(engine)
        await event_log.upgrade(engine)
        await event_log.upgrade(migratable_url)
        async with engine.connect() as conn:  # still usable: upgrade() did not dispose it
            versions = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert versions.scalars().all() == [HEAD]
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_in_one_process_take_turns(migratable_url: str) -> None:
    await asyncio.gather(*(event_log.upgrade(migratable_url) for _ in range(4)))
    assert (await schema_at(migratable_url))["event_log"] == head_indexes(migratable_url)


def test_concurrent_upgrades_in_many_processes_take_turns(migratable_url: str) -> None:
    code = f"import asyncio, event_log; asyncio.run(event_log.upgrade({migratable_url!r}))"
    env = {k: v for k, v in os.environ.items() if k != "EVENT_LOG_URL"}
    workers = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    assert asyncio.run(schema_at(migratable_url))["event_log"] == head_indexes(migratable_url)


async def test_upgrade_reads_the_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'from-env' / 'events.db'}"
    monkeypatch.setenv("EVENT_LOG_URL", url)
    await event_log.upgrade()
    assert "event_log" in await schema_at(url)


async def test_upgrade_works_on_an_in_memory_engine() -> None:
    # StaticPool: one connection, which upgrade() borrows and gives back.
    engine = create_engine(make_url("sqlite+aiosqlite://"))
    try:
        await event_log.upgrade(engine)
        await event_log.upgrade(engine)
        assert (await schema_of(engine))["event_log"] == NEW_INDEXES
    finally:
        await engine.dispose()


async def test_upgrade_wraps_database_failures() -> None:
    with pytest.raises(StorageError) as raised:
        await event_log.upgrade("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    assert raised.value.__cause__ is not None


def test_upgrade_runs_from_an_installed_package_layout(tmp_path: Path) -> None:
    """The wheel's layout (event_log/migrations inside the package) without a checkout."""
    site = tmp_path / "site"
    shutil.copytree(REPO_ROOT / "src" / "event_log", site / "event_log")
    shutil.copytree(REPO_ROOT / "migrations", site / "event_log" / "migrations")
    database = tmp_path / "db" / "events.db"
    code = (
        "import asyncio, event_log, event_log._migrate as m; "
        "print(m.script_location()); "
        f"asyncio.run(event_log.upgrade('sqlite+aiosqlite:///{database}'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "EVENT_LOG_URL"}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert ok(result).strip() == str(site / "event_log" / "migrations")
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]


def test_script_location_is_the_checkouts_in_a_source_tree() -> None:
    assert script_location() == REPO_ROOT / "migrations"


@pytest.mark.parametrize(
    "done",
    [
        ["ALTER TABLE event_log ADD COLUMN seq BIGINT"],
        [
            "ALTER TABLE event_log ADD COLUMN seq BIGINT",
            "CREATE TABLE event_log_sequence (id INTEGER NOT NULL PRIMARY KEY, "
            "last_seq BIGINT NOT NULL)",
            "INSERT INTO event_log_sequence VALUES (1, 0)",
        ],
    ],
    ids=["column-added", "counter-created"],
)
async def test_a_half_done_upgrade_completes_on_mariadb(
    mariadb_only_url: str, done: list[str]
) -> None:
    """MariaDB commits DDL as it goes: an upgrade that failed partway through
    revision 0002 left some of its steps done, and the next upgrade completes it."""
    url = mariadb_only_url
    await alembic_on(url, "upgrade", "0001")
    async with EventLogger.open(url, migrate=False) as log:  # rows without seq
        pass
    await execute_on(
        url,
        "INSERT INTO event_log (id, event_type, source, `timestamp`) VALUES "
        "('00000000-0000-7000-8000-000000000002', 'task.created', 'old', '2026-03-01 12:00:02'),"
        "('00000000-0000-7000-8000-000000000001', 'task.created', 'old', '2026-03-01 12:00:01')",
        *done,
    )
    await event_log.upgrade(url)
    assert (await schema_at(url))["event_log"] == head_indexes(url)
    async with EventLogger.open(url) as log:
        event = await log.log_event("task.started", "new")
        events = await log.list_events(newest_first=False)
        assert [e.id[-1] for e in events.events[:2]] == ["1", "2"]
        follower = log.follow(cursor="00000000-0000-7000-8000-000000000001")
        assert [e.id async for e in _first(follower, 2)] == [events.events[1].id, event.id]


@asynccontextmanager
async def mariadb_upgrade_lock_held(url: str) -> AsyncIterator[None]:
    """Another session holding event_log's MariaDB upgrade lock (``GET_LOCK``)."""
    lock = "CONCAT('event_log.upgrade.', DATABASE())"
    engine = create_engine(make_url(url))
    try:
        async with engine.connect() as holder:
            assert (await holder.exec_driver_sql(f"SELECT GET_LOCK({lock}, 0)")).scalar() == 1
            yield
            await holder.exec_driver_sql(f"DO RELEASE_LOCK({lock})")
    finally:
        await engine.dispose()


async def test_an_upgrade_waiting_too_long_for_another_fails_cleanly_on_mariadb(
    mariadb_only_url: str,
) -> None:
    """While another session holds MariaDB's upgrade lock, an upgrade gives up after
    its lock timeout with StorageError and changes nothing; once the lock is free it runs."""
    url = mariadb_only_url
    await alembic_on(url, "upgrade", "0001")
    kept = "00000000-0000-7000-8000-000000000001"
    await execute_on(
        url,
        "INSERT INTO event_log (id, event_type, source, `timestamp`) VALUES "
        f"('{kept}', 'task.created', 'old', '2026-03-01 12:00:01')",
    )
    old_schema = await schema_at(url)

    def upgrade(sync: sa.Connection) -> None:
        config = alembic_config(sync)
        config.attributes["lock_timeout"] = 1
        command.upgrade(config, "head")

    async with mariadb_upgrade_lock_held(url):
        waiter = create_engine(make_url(url))
        try:
            async with waiter.begin() as conn:
                with pytest.raises(StorageError, match="held the upgrade lock for 1 s"):
                    await conn.run_sync(upgrade)
        finally:
            await waiter.dispose()
        assert await schema_at(url) == old_schema
    await event_log.upgrade(url)
    assert (await schema_at(url))["event_log"] == head_indexes(url)
    async with EventLogger.open(url) as log:
        assert [e.id for e in (await log.list_events()).events] == [kept]


async def test_the_alembic_command_takes_a_lock_timeout_on_mariadb(mariadb_only_url: str) -> None:
    """``alembic -x lock_timeout=S``: the command line's way to the same wait and error."""
    async with mariadb_upgrade_lock_held(mariadb_only_url):
        result = await asyncio.to_thread(
            alembic_cli, "-x", "lock_timeout=1", "upgrade", "head", url=mariadb_only_url
        )
    assert result.returncode != 0
    assert "StorageError: schema upgrade failed" in result.stderr
    assert "held the upgrade lock for 1 s" in result.stderr


async def _first(events: Any, count: int) -> Any:
    async for event in events:
        yield event
        count -= 1
        if count == 0:
            await events.aclose()
            return


# -- the alembic command line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "dialect_types"),
    [
        ("sqlite+aiosqlite:///x.db", ["data TEXT", "timestamp VARCHAR(32) NOT NULL"]),
        (
            "postgresql+asyncpg://someone:secret@db.invalid:5432/events",
            ["data JSONB", "timestamp TIMESTAMP WITH TIME ZONE NOT NULL"],
        ),
        (
            "mysql+asyncmy://someone:secret@db.invalid:3306/events",
            ["data JSON", "timestamp DATETIME(6) NOT NULL", "COLLATE utf8mb4_nopad_bin"],
        ),
    ],
    ids=["sqlite", "postgres", "mariadb"],
)
@pytest.mark.parametrize("via", ["x-argument", "environment"])
def test_offline_sql(url: str, dialect_types: list[str], via: str) -> None:
    if via == "x-argument":
        result = alembic_cli("upgrade", "head", "--sql", url=url)
    else:
        result = alembic_cli("upgrade", "head", "--sql", env_url=url)
    sql = ok(result)
    assert "CREATE TABLE event_log" in sql
    for column in dialect_types:
        assert column in sql
    for index in head_indexes(url):
        assert f"INDEX {index} ON event_log" in sql
    assert "INSERT INTO alembic_version" in sql
    assert not (REPO_ROOT / "x.db").exists()  # offline means no database is touched


def test_cli_upgrade_check_and_downgrade(migratable_url: str) -> None:
    ok(alembic_cli("upgrade", "head", url=migratable_url))
    assert f"{HEAD} (head)" in ok(alembic_cli("current", url=migratable_url))
    check = ok(alembic_cli("check", url=migratable_url))
    assert "No new upgrade operations detected" in check

    ok(alembic_cli("downgrade", "base", url=migratable_url))
    assert HEAD not in ok(alembic_cli("current", url=migratable_url))
    ok(alembic_cli("upgrade", "head", env_url=migratable_url))
    assert f"{HEAD} (head)" in ok(alembic_cli("current", env_url=migratable_url))


def test_cli_check_reports_drift(migratable_url: str) -> None:
    """The check is not vacuous: a schema that differs from the model fails it."""
    ok(alembic_cli("upgrade", "head", url=migratable_url))
    drop = sa.text("DROP INDEX ix_event_log_task_id_timestamp_id")
    if is_sqlite(migratable_url):
        with closing(sqlite3.connect(sqlite_path(migratable_url))) as conn:
            conn.execute(str(drop))
    elif is_mariadb(migratable_url):
        asyncio.run(execute_on(migratable_url, f"{drop} ON event_log"))
    else:
        asyncio.run(_pg_execute(migratable_url, str(drop)))
    result = alembic_cli("check", url=migratable_url)
    assert result.returncode != 0
    assert "ix_event_log_task_id_timestamp_id" in result.stdout + result.stderr


async def _pg_execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


# -- adopting the original system's table -----------------------------------------------------


@dataclass(frozen=True)
class OriginalRow:
    id: str
    event_type: str
    source: str
    task_id: str | None
    agent_id: str | None
    data: str | None
    timestamp: str
    # What the adopted row must hold.
    instant: datetime
    value: dict[str, Any] | None


EVENT_TYPES = ["task.created", "task.assigned", "agent.joined", "tool.called", "system.error"]
OFFSETS = [timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


def original_timestamp(instant: datetime, style: int) -> str:
    """The ways the original system's ``datetime.isoformat()`` strings can look."""
    if style == 0:
        return instant.replace(tzinfo=None).isoformat()  # naive UTC, fraction when non-zero
    if style == 1:
        return instant.isoformat()  # +00:00
    if style == 2:
        return instant.astimezone(OFFSETS[0]).isoformat()
    if style == 3:
        return instant.replace(tzinfo=None).isoformat() + "Z"
    if style == 4:
        return instant.astimezone(OFFSETS[1]).isoformat(timespec="milliseconds")
    return str(instant.replace(tzinfo=None))  # "2026-03-01 12:00:00.5", space-separated


def original_rows(count: int, *, seed: int = 17) -> list[OriginalRow]:
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = []
    for i in range(count):
        micro = 0 if i % 7 == 0 else rng.randrange(1_000_000)
        if i % 6 == 4:  # milliseconds only: that style cannot carry microseconds
            micro -= micro % 1000
        instant = start + timedelta(seconds=rng.randrange(86_400 * 30), microseconds=micro)
        value: dict[str, Any] | None
        if i % 4 == 0:
            value, data = None, None
        elif i % 4 == 1:
            value = {"i": i, "bid_sats": rng.randrange(10_000), "tags": ["a", "b"]}
            data = json.dumps(value)
        elif i % 4 == 2:
            value = {"note": "über Ünïcødé ✓", "nested": {"deep": [1, 2.5, None, True]}}
            data = json.dumps(value)
        else:
            value, data = None, "null"  # json.dumps(None) is stored as the text 'null'
        rows.append(
            OriginalRow(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                event_type=EVENT_TYPES[i % len(EVENT_TYPES)],
                source="coordinator",
                task_id=f"task-{i % 40}" if i % 3 else None,
                agent_id=f"agent-{i % 11}" if i % 5 else None,
                data=data,
                timestamp=original_timestamp(instant, i % 6),
                instant=instant,
                value=value,
            )
        )
    return rows


def _as_tuples(rows: Sequence[OriginalRow]) -> list[tuple[Any, ...]]:
    return [
        (r.id, r.event_type, r.source, r.task_id, r.agent_id, r.data, r.timestamp) for r in rows
    ]


async def create_original(url: str, rows: Sequence[OriginalRow]) -> None:
    """The original system's table, written the way it wrote it."""
    insert = "INSERT INTO event_log VALUES (?, ?, ?, ?, ?, ?, ?)"
    if is_sqlite(url):
        path = Path(sqlite_path(url))
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as conn, conn:
            for ddl in ORIGINAL_DDL:
                conn.execute(ddl)
            conn.executemany(insert, _as_tuples(rows))
        return
    if is_mariadb(url):
        # Fails (a TEXT primary key needs a key length): see conftest's original_url.
        await execute_on(url, *ORIGINAL_DDL)
        return
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for ddl in ORIGINAL_DDL:
            await conn.execute(ddl)
        await conn.copy_records_to_table("event_log", records=_as_tuples(rows))
    finally:
        await conn.close()


async def read_table(url: str, table: str) -> list[tuple[Any, ...]]:
    """Raw (id, timestamp, data as text) as stored, ordered by id."""
    sql = f'SELECT id, "timestamp", data FROM {table} ORDER BY id'
    if is_sqlite(url):
        with closing(sqlite3.connect(sqlite_path(url))) as conn:
            return conn.execute(sql).fetchall()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        records = await conn.fetch(sql.replace("data FROM", "data::text FROM"))
        return [tuple(record) for record in records]
    finally:
        await conn.close()


async def column_types(url: str, table: str) -> dict[str, str]:
    def inspect(conn: sa.Connection) -> dict[str, str]:
        return {
            column["name"]: str(column["type"]) for column in sa.inspect(conn).get_columns(table)
        }

    engine = create_engine(make_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(inspect)
    finally:
        await engine.dispose()


ADOPTED_ROWS = 12_345  # more than two batches of 5,000


async def test_adopting_the_original_table_keeps_every_row(original_url: str) -> None:
    rows = original_rows(ADOPTED_ROWS)
    await create_original(original_url, rows)

    await event_log.upgrade(original_url)

    schema = await schema_at(original_url)
    # The set-aside original table is gone.
    assert set(schema) == head_tables(original_url)
    assert schema["event_log"] == head_indexes(original_url)  # idx_event_log_* are gone

    expected = {row.id: row for row in rows}
    stored = await read_table(original_url, "event_log")
    assert len(stored) == len(rows)
    for row_id, timestamp, data in stored:
        row = expected[row_id]
        if is_sqlite(original_url):
            assert isinstance(timestamp, str)
            assert len(timestamp) == TIMESTAMP_TEXT_WIDTH
            assert timestamp == format_utc(row.instant)
        else:
            assert timestamp == row.instant
        assert (None if data is None else json.loads(data)) == row.value
    if is_sqlite(original_url):
        # Text order is time order: the index range scans the logger relies on.
        by_text = [row_id for row_id, _, _ in sorted(stored, key=lambda r: (r[1], r[0]))]
        by_time = [r.id for r in sorted(rows, key=lambda r: (r.instant, r.id))]
        assert by_text == by_time

    # Idempotent afterwards; and the logger reads every row.
    async with EventLogger.open(original_url) as log:
        assert await log.count_events() == len(rows)
        for row in rows[:: len(rows) // 50]:
            event = await log.get_event(row.id)
            assert event is not None
            assert event.timestamp == row.instant
            assert event.data == row.value
            assert (event.event_type, event.task_id, event.agent_id) == (
                row.event_type,
                row.task_id,
                row.agent_id,
            )
        timeline = await log.get_task_events("task-7")
        expected_task = sorted(
            (r for r in rows if r.task_id == "task-7"), key=lambda r: (r.instant, r.id)
        )
        assert [e.id for e in timeline] == [r.id for r in expected_task]


async def test_adopting_an_empty_original_table(original_url: str) -> None:
    await create_original(original_url, [])
    await event_log.upgrade(original_url)
    assert (await schema_at(original_url))["event_log"] == head_indexes(original_url)
    assert await read_table(original_url, "event_log") == []


@pytest.mark.parametrize(
    ("column", "bad_value", "message"),
    [
        ("timestamp", "last tuesday", "timestamp 'last tuesday' is not an ISO 8601 date-time"),
        ("data", '{"unterminated": ', "data is not JSON"),
    ],
)
async def test_an_unconvertible_row_fails_the_upgrade_and_changes_nothing(
    original_url: str, column: str, bad_value: str, message: str
) -> None:
    rows = original_rows(7_000)
    bad = rows[6_000]  # in the second batch: the first one was already copied
    rows[6_000] = OriginalRow(**{**bad.__dict__, column: bad_value})
    await create_original(original_url, rows)
    before_types = await column_types(original_url, "event_log")
    before_rows = await read_table(original_url, "event_log")

    with pytest.raises(StorageError) as raised:
        await event_log.upgrade(original_url)
    assert_refused_by_revision_0001(raised.value)
    assert bad.id in str(raised.value)
    assert message in str(raised.value)

    # Rolled back as a whole: the original table, its rows and its indexes, nothing else.
    schema = await schema_at(original_url)
    assert set(schema) == {"event_log"}
    assert schema["event_log"] == ORIGINAL_INDEXES
    assert await column_types(original_url, "event_log") == before_types
    assert await read_table(original_url, "event_log") == before_rows


def test_cli_adoption_failure_is_atomic_too(original_url: str) -> None:
    rows = original_rows(10)
    rows[3] = OriginalRow(**{**rows[3].__dict__, "timestamp": "2026-13-45T99:00:00"})
    asyncio.run(create_original(original_url, rows))

    result = alembic_cli("upgrade", "head", url=original_url)
    assert result.returncode != 0
    assert rows[3].id in result.stderr
    assert len(asyncio.run(read_table(original_url, "event_log"))) == len(rows)
    assert set(asyncio.run(schema_at(original_url))) == {"event_log"}


async def test_a_table_that_is_not_the_original_is_refused(migratable_url: str) -> None:
    engine = create_engine(make_url(migratable_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE event_log (something TEXT)"))
    finally:
        await engine.dispose()
    with pytest.raises(StorageError, match="lacks the columns") as raised:
        await event_log.upgrade(migratable_url)
    assert_refused_by_revision_0001(raised.value)
    assert set(await schema_at(migratable_url)) == {"event_log"}


async def test_adoption_refuses_when_the_table_it_sets_the_original_aside_as_exists(
    original_url: str,
) -> None:
    await create_original(original_url, original_rows(3))
    await execute_on(original_url, "CREATE TABLE event_log_original (something TEXT)")
    with pytest.raises(StorageError, match="a table 'event_log_original' is in the way") as raised:
        await event_log.upgrade(original_url)
    assert_refused_by_revision_0001(raised.value)
    schema = await schema_at(original_url)
    assert set(schema) == {"event_log", "event_log_original"}
    assert schema["event_log"] == ORIGINAL_INDEXES


async def test_original_rows_without_an_id_fail_the_upgrade_and_change_nothing(
    tmp_path: Path,
) -> None:
    """Only SQLite lets the original's TEXT PRIMARY KEY hold NULL."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    rows = original_rows(3)
    await create_original(url, rows)
    with closing(sqlite3.connect(sqlite_path(url))) as conn, conn:
        conn.execute("UPDATE event_log SET id = NULL WHERE id = ?", (rows[1].id,))
    before = await read_table(url, "event_log")
    with pytest.raises(StorageError, match=r"1 row\(s\) have a NULL id") as raised:
        await event_log.upgrade(url)
    assert_refused_by_revision_0001(raised.value)
    assert await schema_at(url) == {"event_log": ORIGINAL_INDEXES}
    assert await read_table(url, "event_log") == before


# -- the row converters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Converters:
    """One implementation of the original-row conversion and the error it raises."""

    normalize_timestamp: Callable[[str], datetime]
    normalize_data: Callable[[Any], str | None]


def _frozen_converters() -> Converters:
    module = revision_module("0001")
    return Converters(module._normalize_timestamp, module._normalize_data)


REVISION_0001 = revision_module("0001")
CONVERTERS = [
    pytest.param(Converters(normalize_timestamp, normalize_data), id="library"),
    pytest.param(_frozen_converters(), id="revision-0001"),
]


def assert_refused_by_revision_0001(error: StorageError) -> None:
    """``error`` is revision 0001's own refusal (as upgrade() reports it), not another failure.

    Alembic loads the revision anew for every command, so the class is compared by name.
    """
    cause = type(error.__cause__)
    assert (cause.__module__, cause.__qualname__) == (
        REVISION_0001._AdoptionError.__module__,
        REVISION_0001._AdoptionError.__qualname__,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00", "2026-03-01T12:00:00.000000+00:00"),
        ("2026-03-01T12:00:00.123456", "2026-03-01T12:00:00.123456+00:00"),
        ("2026-03-01T12:00:00+00:00", "2026-03-01T12:00:00.000000+00:00"),
        ("2026-03-01T14:00:00.5+02:00", "2026-03-01T12:00:00.500000+00:00"),
        ("2026-03-01T12:00:00Z", "2026-03-01T12:00:00.000000+00:00"),
        ("2026-03-01T12:00:00.123456Z", "2026-03-01T12:00:00.123456+00:00"),
        ("2026-03-01 06:30:00.25-05:30", "2026-03-01T12:00:00.250000+00:00"),
        ("2026-03-01T00:30:00+01:00", "2026-02-28T23:30:00.000000+00:00"),
        (" 2026-03-01T12:00:00 ", "2026-03-01T12:00:00.000000+00:00"),
    ],
)
@pytest.mark.parametrize("conv", CONVERTERS)
def test_normalize_timestamp_examples(conv: Converters, text: str, expected: str) -> None:
    assert format_utc(conv.normalize_timestamp(text)) == expected


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-02-30T12:00:00", "2026-03-01T25:00:00", "12:00:00", "1e9"]
)
@pytest.mark.parametrize("conv", CONVERTERS)
def test_normalize_timestamp_rejects_what_is_not_a_datetime(conv: Converters, text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError; convert_row adds the id
        conv.normalize_timestamp(text)


@pytest.mark.parametrize("conv", CONVERTERS)
def test_normalize_timestamp_rejects_values_out_of_range_in_utc(conv: Converters) -> None:
    with pytest.raises(ValueError, match="out of range"):
        conv.normalize_timestamp("0001-01-01T00:00:00+01:00")


# Fixed offsets to the second and beyond (isoformat writes "+05:30:15.123456"), and UTC.
_offsets: st.SearchStrategy[tzinfo] = st.just(UTC) | st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23)),
)
# Not year 1 or 9999: an offset could move the instant outside datetime's range in UTC.
_LOW, _HIGH = datetime(2, 1, 1), datetime(9998, 12, 31)


@pytest.mark.parametrize("conv", CONVERTERS)
@given(
    st.datetimes(min_value=_LOW, max_value=_HIGH)
    | st.datetimes(min_value=_LOW, max_value=_HIGH, timezones=_offsets)
)
def test_normalize_timestamp_keeps_the_instant_in_fixed_width_utc(
    conv: Converters, value: datetime
) -> None:
    normalized = conv.normalize_timestamp(value.isoformat())
    assert normalized.utcoffset() == timedelta(0)
    expected = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    assert normalized == expected
    assert len(format_utc(normalized)) == TIMESTAMP_TEXT_WIDTH


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("null", None),
        ('{"a": 1, "b": [1, 2]}', '{"a":1,"b":[1,2]}'),
        ('{"x": "\\u00fc"}', '{"x":"ü"}'),
        ('{"v": NaN, "w": [Infinity, -Infinity]}', '{"v":"NaN","w":["Infinity","-Infinity"]}'),
        ({"already": "decoded"}, '{"already":"decoded"}'),
        ("[1, 2]", '{"value":[1,2]}'),
        ('"text"', '{"value":"text"}'),
        ("7", '{"value":7}'),
    ],
)
@pytest.mark.parametrize("conv", CONVERTERS)
def test_normalize_data(conv: Converters, text: str | None, expected: str | None) -> None:
    assert conv.normalize_data(text) == expected


@pytest.mark.parametrize("conv", CONVERTERS)
def test_normalize_data_rejects_what_is_not_json(conv: Converters) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's own error; convert_row adds the id
        conv.normalize_data("{'single': 'quotes'}")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"row_id": None}, "id is NULL"),
        ({"row_id": "x" * 37}, "id is 37 characters long"),
        ({"source": None}, "source is NULL"),
        ({"task_id": "t" * 256}, "task_id is 256 characters long"),
        ({"timestamp": None}, "timestamp is NULL"),
        ({"timestamp": "soon"}, "timestamp 'soon' is not an ISO 8601 date-time"),
        ({"data": "{'single': 'quotes'}"}, "data is not JSON"),
    ],
)
def test_convert_row_names_the_row_it_cannot_convert(fields: dict[str, Any], message: str) -> None:
    row: dict[str, Any] = {
        "row_id": "row-1",
        "event_type": "task.created",
        "source": "coordinator",
        "task_id": None,
        "agent_id": None,
        "data": None,
        "timestamp": "2026-03-01T12:00:00",
        **fields,
    }
    with pytest.raises(REVISION_0001._AdoptionError, match=message.replace("(", r"\(")) as raised:
        REVISION_0001._convert_row(**row)
    assert repr(row["row_id"]) in str(raised.value)


# -- frozen revisions -------------------------------------------------------------------------

# A revision must mean the same thing forever, so it may use only what cannot
# change under it: alembic, sqlalchemy and the standard library, never event_log.
REVISION_IMPORTS = {"__future__", "alembic", "sqlalchemy", *sys.stdlib_module_names}


def foreign_imports(source: str) -> list[str]:
    """What ``source`` imports beyond ``REVISION_IMPORTS``, as "line N: module".

    A dynamic import (``importlib.import_module``, ``__import__``) is listed
    whatever it names: it could reach event_log round the check.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        elif isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module"))
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
            continue
        else:
            continue
        found += [
            f"line {node.lineno}: {module}"
            for module in modules
            if module.split(".")[0] not in REVISION_IMPORTS
        ]
    return found


def test_revisions_import_only_alembic_sqlalchemy_and_the_standard_library() -> None:
    revisions = sorted((script_location() / "versions").glob("*.py"))
    assert {path.name for path in revisions} >= {
        "0001_create_event_log.py",
        "0002_commit_sequence.py",
        "0003_number_rows_written_without_seq.py",
        "0004_postgresql_transaction_ids.py",
    }
    found = {
        path.name: imports
        for path in revisions
        if (imports := foreign_imports(path.read_text(encoding="utf-8")))
    }
    assert found == {}, f"revisions must not import these (copy what they need instead): {found}"


@pytest.mark.parametrize(
    "source",
    [
        "from event_log._adopt import convert_row",
        "from event_log import _partition",
        "import event_log",
        "import json, event_log._schema as schema",
        "def upgrade() -> None:\n    from event_log._partition import partitioning\n",
        "import importlib\nimportlib.import_module('event_log._adopt')",
        "from importlib import import_module\nimport_module('event_log')",
        "__import__('event_log')",
        "from . import helpers",
    ],
)
def test_the_revision_import_check_finds_event_log_however_imported(source: str) -> None:
    assert foreign_imports(source)


def test_the_revision_import_check_allows_alembic_sqlalchemy_and_the_standard_library() -> None:
    source = (
        "from __future__ import annotations\nimport json\nfrom datetime import UTC, datetime\n"
        "import sqlalchemy as sa\nfrom sqlalchemy.dialects import mysql\n"
        "from alembic import context, op\n"
    )
    assert foreign_imports(source) == []


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///x.db",
        "postgresql+asyncpg://someone:secret@db.invalid:5432/events",
        "mysql+asyncmy://someone:secret@db.invalid:3306/events",
    ],
    ids=["sqlite", "postgres", "mariadb"],
)
def test_revisions_name_what_they_create_whatever_the_models_naming_convention(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """env.py hands Alembic the model's metadata, and with it the model's naming
    convention, which would name any constraint or index a revision left unnamed;
    the revisions name everything (op.f), so another convention changes nothing."""
    monkeypatch.setenv("EVENT_LOG_URL", url)
    sql = offline_sql()
    assert "CREATE TABLE event_log" in sql
    other = {key: f"renamed_{key}_%(table_name)s" for key in ("ix", "uq", "ck", "fk", "pk")}
    monkeypatch.setattr(Base.metadata, "naming_convention", other)
    assert offline_sql() == sql
