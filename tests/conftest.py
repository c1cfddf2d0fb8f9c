"""Backends for the contract suite: in-memory SQLite, file SQLite, PostgreSQL.

PostgreSQL tests use ``$EVENT_LOG_TEST_POSTGRES_URL`` (an SQLAlchemy asyncpg URL
of a database the tests may create databases from; default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``). The session makes a
fresh database and every test starts from an empty ``public`` schema. Without a
reachable server the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from event_log import EventLogger, upgrade

PG_ENV = "EVENT_LOG_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

SQLITE_MEMORY = pytest.param("sqlite-memory", marks=pytest.mark.sqlite, id="sqlite-memory")
SQLITE_FILE = pytest.param("sqlite-file", marks=pytest.mark.sqlite, id="sqlite-file")
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")
# PostgreSQL with event_log partitioned by day (upgrade(url, partition="day")).
POSTGRES_PARTITIONED = pytest.param(
    "postgres-partitioned", marks=pytest.mark.postgres, id="postgres-partitioned"
)
ALL_BACKENDS = [SQLITE_MEMORY, SQLITE_FILE, POSTGRES, POSTGRES_PARTITIONED]
MIGRATABLE_BACKENDS = [SQLITE_FILE, POSTGRES]


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_async(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(url: str, sql: str) -> None:
    """Run one admin statement on a private loop in a worker thread.

    A thread keeps ``asyncio.run`` away from the loop pytest-asyncio manages.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin_async(url, sql)).result()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own database URL."""
    monkeypatch.delenv("EVENT_LOG_URL", raising=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin_url = os.environ.get(PG_ENV, PG_DEFAULT)
    try:
        _admin(admin_url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = (
            f"PostgreSQL is not reachable at {admin_url} ({exc!r}); start it or set "
            f"{PG_ENV} to an asyncpg URL to run the PostgreSQL tests"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    name = f"event_log_test_{uuid.uuid4().hex[:12]}"
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_postgres(url: str) -> None:
    _admin(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def _partition(url: str, by: str = "day") -> None:
    """Upgrade with ``event_log`` partitioned (on a private loop, like ``_admin``)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, upgrade(url, partition=by)).result()


def _backend_url(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of backend ``name``: empty, except that ``postgres-partitioned``
    has the schema already, with event_log partitioned by day."""
    if name == "sqlite-memory":
        return "sqlite+aiosqlite://"
    if name == "sqlite-file":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    if name == "postgres-partitioned":
        _partition(url)
    return url


@pytest.fixture(params=ALL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema yet) on each backend in turn."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture(params=MIGRATABLE_BACKENDS)
def migratable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that outlives one connection (file SQLite, PostgreSQL)."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture
def partitioned_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A PostgreSQL database at head with event_log partitioned by day (no rows)."""
    return _backend_url("postgres-partitioned", request, tmp_path)


@pytest.fixture(params=[POSTGRES])
def postgres_only_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty PostgreSQL database, for the tests of PostgreSQL's own behaviour."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture
async def log(backend_url: str) -> AsyncIterator[EventLogger]:
    """An open logger with the schema migrated, on each backend in turn."""
    async with EventLogger.open(backend_url) as logger:
        yield logger
