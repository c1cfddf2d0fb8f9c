"""Backends for the contract suite: in-memory SQLite, file SQLite, PostgreSQL (plain,
through psycopg 3, and with event_log partitioned by day), MariaDB.

PostgreSQL tests use ``$EVENT_LOG_TEST_POSTGRES_URL`` (an SQLAlchemy asyncpg URL
of a database the tests may create databases from; default
``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``). MariaDB tests use
``$EVENT_LOG_TEST_MARIADB_URL`` (an SQLAlchemy asyncmy URL of a user who may
create databases; default ``mysql+asyncmy://root@127.0.0.1:3306/test``).

Each test session (each pytest-xdist worker) makes its own databases and drops
them at the end (a later session drops those of one that was killed, see
``scratch_databases.py``):

- one per server for the tests that need an empty database (``backend_url``,
  ``migratable_url`` and the like): every such test starts from an empty
  ``public`` schema on PostgreSQL, from a database dropped and created again on
  MariaDB;
- one per server and layout kept at the newest revision, for ``head_url`` (and
  so ``log``): every such test starts with ``event_log`` emptied and the rest as
  the upgrade left it (see ``head_databases.py``). File SQLite is a copy of a
  file migrated once.

The ``postgres-psycopg`` backend is PostgreSQL's database with the URL's driver
swapped. Without a reachable server the tests skip, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncmy  # type: ignore[import-untyped]
import asyncmy.errors  # type: ignore[import-untyped]
import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from event_log import EventLogger, upgrade
from head_databases import AdminLoop, HeadDatabase, MariadbHead, PostgresHead, mariadb_create
from scratch_databases import LIKE, leftovers, session_database_name
from slow_first import order_slow_first

PG_ENV = "EVENT_LOG_TEST_POSTGRES_URL"
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

MARIADB_ENV = "EVENT_LOG_TEST_MARIADB_URL"
MARIADB_DEFAULT = "mysql+asyncmy://root@127.0.0.1:3306/test"

SQLITE_MEMORY = pytest.param("sqlite-memory", marks=pytest.mark.sqlite, id="sqlite-memory")
SQLITE_FILE = pytest.param("sqlite-file", marks=pytest.mark.sqlite, id="sqlite-file")
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")
MARIADB = pytest.param("mariadb", marks=pytest.mark.mariadb, id="mariadb")
# PostgreSQL through psycopg 3: the same database, the URL's driver swapped.
POSTGRES_PSYCOPG = pytest.param(
    "postgres-psycopg", marks=pytest.mark.postgres, id="postgres-psycopg"
)
# PostgreSQL with event_log partitioned by day (upgrade(url, partition="day")).
POSTGRES_PARTITIONED = pytest.param(
    "postgres-partitioned", marks=pytest.mark.postgres, id="postgres-partitioned"
)
ALL_BACKENDS = [
    SQLITE_MEMORY,
    SQLITE_FILE,
    POSTGRES,
    POSTGRES_PSYCOPG,
    POSTGRES_PARTITIONED,
    MARIADB,
]
MIGRATABLE_BACKENDS = [SQLITE_FILE, POSTGRES, POSTGRES_PSYCOPG, MARIADB]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_async(url: str, sql: str, fetch: bool = False) -> list[str]:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        if fetch:
            return [str(row[0]) for row in await conn.fetch(sql)]
        await conn.execute(sql)
        return []
    finally:
        await conn.close()


def _admin(url: str, sql: str, fetch: bool = False) -> list[str]:
    """Run one admin statement on a private loop in a worker thread (with ``fetch``,
    the first column of its rows).

    A thread keeps ``asyncio.run`` away from the loop pytest-asyncio manages.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _admin_async(url, sql, fetch)).result()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest tests start first, spread over the pytest-xdist workers."""
    order_slow_first(items)


@pytest.fixture(autouse=True)
def _alone_when_it_restarts_the_server(request: pytest.FixtureRequest) -> None:
    """A test that restarts the shared PostgreSQL server would break the tests other
    pytest-xdist workers run meanwhile: there it skips (CI runs it on its own)."""
    if request.node.get_closest_marker("server_restart") and os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("restarts the shared PostgreSQL server: run it alone (-m server_restart)")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own database URL."""
    monkeypatch.delenv("EVENT_LOG_URL", raising=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end (and the
    databases of sessions that were killed, see ``scratch_databases.py``)."""
    admin_url = os.environ.get(PG_ENV, PG_DEFAULT)
    try:
        _admin(admin_url, "SELECT 1")
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = (
            f"PostgreSQL is not reachable at {admin_url} ({exc!r}); start it or set "
            f"{PG_ENV} to an asyncpg URL to run the PostgreSQL tests"
        )
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    listed = _admin(admin_url, f"SELECT datname FROM pg_database WHERE datname LIKE '{LIKE}'", True)
    for stale in leftovers(listed, make_url(admin_url).host):
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
    name = session_database_name()
    _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_postgres(url: str) -> None:
    _admin(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def psycopg_url(url: str) -> str:
    """``url`` (a PostgreSQL URL of any driver) through psycopg 3."""
    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


async def _mariadb_admin_async(url: str, statements: list[str]) -> list[str]:
    parsed = make_url(url)
    conn = await asyncmy.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        connect_timeout=5,
        autocommit=True,
    )
    try:
        async with conn.cursor() as cursor:
            # A test that leaked an open transaction must fail this reset, not hang it.
            await cursor.execute("SET SESSION lock_wait_timeout = 30")
            for sql in statements:
                await cursor.execute(sql)
            return [str(row[0]) for row in await cursor.fetchall() or []]
    finally:
        conn.close()


def _mariadb_admin(url: str, *statements: str) -> list[str]:
    """Run admin statements on a private loop in a worker thread (see ``_admin``): the
    first column of the last one's rows."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _mariadb_admin_async(url, list(statements))).result()


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """A fresh MariaDB database for this test session, dropped at the end (and the
    databases of sessions that were killed, see ``scratch_databases.py``)."""
    admin_url = os.environ.get(MARIADB_ENV, MARIADB_DEFAULT)
    try:
        _mariadb_admin(admin_url, "SELECT 1")
    except (OSError, asyncmy.errors.Error, TimeoutError) as exc:
        message = (
            f"MariaDB is not reachable at {admin_url} ({exc!r}); start it or set "
            f"{MARIADB_ENV} to an asyncmy URL (mysql+asyncmy://USER[:PASSWORD]@HOST:PORT/DB) "
            "to run the MariaDB tests"
        )
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    listed = _mariadb_admin(admin_url, f"SHOW DATABASES LIKE '{LIKE}'")
    for stale in leftovers(listed, make_url(admin_url).host):
        _mariadb_admin(admin_url, f"DROP DATABASE IF EXISTS `{stale}`")
    name = session_database_name()
    _mariadb_admin(admin_url, mariadb_create(name))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _mariadb_admin(admin_url, f"DROP DATABASE IF EXISTS `{name}`")


def _reset_mariadb(url: str) -> None:
    name = make_url(url).database
    _mariadb_admin(url, f"DROP DATABASE IF EXISTS `{name}`", mariadb_create(f"{name}"))


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
    if name == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        _reset_mariadb(url)
        return url
    url = request.getfixturevalue("postgres_url")
    _reset_postgres(url)
    if name == "postgres-partitioned":
        _partition(url)
    if name == "postgres-psycopg":
        return psycopg_url(url)
    return url


@pytest.fixture(params=ALL_BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no schema yet) on each backend in turn."""
    return _backend_url(request.param, request, tmp_path)


# The command line takes PostgreSQL URLs of asyncpg only (its parse_url refuses
# postgresql+psycopg://), so its tests leave the psycopg backend out.
_CLI_TEST_MODULES = ("test_cli", "test_cli_process", "test_cli_retention")


@pytest.fixture(params=MIGRATABLE_BACKENDS)
def migratable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database that outlives one connection (file SQLite, PostgreSQL through
    each driver, MariaDB)."""
    if request.param == "postgres-psycopg" and request.module.__name__ in _CLI_TEST_MODULES:
        # The command line reaches PostgreSQL only through the library, which the
        # other suites run on both drivers; one driver keeps the suite's time down.
        pytest.skip("command-line tests run PostgreSQL through asyncpg only")
    return _backend_url(request.param, request, tmp_path)


# MariaDB never held the original system's table: its DDL (TEXT PRIMARY KEY,
# indexes on TEXT) cannot be created there, so adopting one cannot be tested.
ORIGINAL_BACKENDS = [
    SQLITE_FILE,
    POSTGRES,
    pytest.param(
        "mariadb",
        marks=[
            pytest.mark.mariadb,
            pytest.mark.xfail(
                strict=True,
                raises=sqlalchemy.exc.OperationalError,
                reason="the original system's DDL (id TEXT PRIMARY KEY) cannot be created on "
                "MariaDB (BLOB/TEXT key without a key length): there is no original table "
                "to adopt there",
            ),
        ],
        id="mariadb",
    ),
]


@pytest.fixture(params=ORIGINAL_BACKENDS)
def original_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database where the original system's table can be created to be adopted."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture
def partitioned_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A PostgreSQL database at head with event_log partitioned by day (no rows)."""
    return _backend_url("postgres-partitioned", request, tmp_path)


@pytest.fixture(params=[POSTGRES])
def postgres_only_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty PostgreSQL database, for the tests of PostgreSQL's own behaviour."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture(params=[POSTGRES, POSTGRES_PSYCOPG])
def postgres_driver_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty PostgreSQL database through each driver in turn (asyncpg, psycopg 3)."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture(params=[POSTGRES_PSYCOPG])
def psycopg_only_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty PostgreSQL database through psycopg 3 (``postgresql+psycopg://``)."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture(params=[MARIADB])
def mariadb_only_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty MariaDB database, for the tests of MariaDB's own behaviour."""
    return _backend_url(request.param, request, tmp_path)


@pytest.fixture(scope="session")
def admin_loop() -> Iterator[AdminLoop]:
    """The event loop (in a thread) that holds the head databases' admin connections."""
    loop = AdminLoop()
    yield loop
    loop.close()


def _kept_at_head(loop: AdminLoop, head: HeadDatabase) -> Iterator[HeadDatabase]:
    try:
        yield head
    finally:
        loop.run(head.drop())


@pytest.fixture(scope="session")
def _postgres_head(postgres_url: str, admin_loop: AdminLoop) -> Iterator[HeadDatabase]:
    """This session's PostgreSQL database at head (built at the first reset)."""
    name = f"{make_url(postgres_url).database}_head"
    yield from _kept_at_head(admin_loop, PostgresHead(postgres_url, name, partition=None))


@pytest.fixture(scope="session")
def _postgres_day_head(postgres_url: str, admin_loop: AdminLoop) -> Iterator[HeadDatabase]:
    """This session's PostgreSQL database at head, event_log partitioned by day."""
    name = f"{make_url(postgres_url).database}_day"
    yield from _kept_at_head(admin_loop, PostgresHead(postgres_url, name, partition="day"))


@pytest.fixture(scope="session")
def _mariadb_head(mariadb_url: str, admin_loop: AdminLoop) -> Iterator[HeadDatabase]:
    """This session's MariaDB database at head."""
    name = f"{make_url(mariadb_url).database}_head"
    yield from _kept_at_head(admin_loop, MariadbHead(mariadb_url, name))


@pytest.fixture(scope="session")
def _sqlite_head_file(tmp_path_factory: pytest.TempPathFactory, admin_loop: AdminLoop) -> Path:
    """An SQLite file that upgrade() brought to head, for each test to copy."""
    path = tmp_path_factory.mktemp("sqlite-head") / "events.db"
    admin_loop.run(upgrade(f"sqlite+aiosqlite:///{path}"))
    # Everything is in the file itself: the last connection's close checkpointed the WAL.
    assert sorted(p.name for p in path.parent.iterdir()) == ["events.db"]
    return path


_HEADS = {
    "postgres": "_postgres_head",
    "postgres-psycopg": "_postgres_head",
    "postgres-partitioned": "_postgres_day_head",
    "mariadb": "_mariadb_head",
}


@pytest.fixture(params=ALL_BACKENDS)
def head_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database at the newest revision with no events, on each backend in turn
    (``postgres-partitioned``: event_log partitioned by day). In-memory SQLite lives
    only as long as its connection: that one is empty, and opening a logger migrates it."""
    name = request.param
    if name == "sqlite-memory":
        return "sqlite+aiosqlite://"
    if name == "sqlite-file":
        path = tmp_path / "events.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_head_file"), path)
        return f"sqlite+aiosqlite:///{path}"
    head: HeadDatabase = request.getfixturevalue(_HEADS[name])
    request.getfixturevalue("admin_loop").run(head.reset())
    return psycopg_url(head.url) if name == "postgres-psycopg" else head.url


@pytest.fixture
async def log(head_url: str) -> AsyncIterator[EventLogger]:
    """An open logger on a database at head (opening migrates: a no-op there, except on
    in-memory SQLite), on each backend in turn."""
    async with EventLogger.open(head_url) as logger:
        yield logger
