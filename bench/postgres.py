"""PostgreSQL plumbing: reachability, a scratch database per run, a fresh table per scenario."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

__all__ = [
    "DEFAULT_ADMIN_URL",
    "PG_URL_ENV",
    "asyncpg_dsn",
    "scratch_database",
    "server_version",
    "truncate",
    "unreachable",
]

DEFAULT_ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
# The environment variable that overrides DEFAULT_ADMIN_URL (read by the command lines).
PG_URL_ENV = "EVENT_LOG_BENCH_POSTGRES_URL"
_CONNECT_TIMEOUT_S = 5


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from an SQLAlchemy ``postgresql+asyncpg`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _execute(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=_CONNECT_TIMEOUT_S)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def unreachable(admin_url: str) -> str | None:
    """Why the server at ``admin_url`` cannot be used, or None when it answers."""
    try:
        asyncio.run(_execute(admin_url, "SELECT 1"))
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        return f"PostgreSQL not reachable at {admin_url}: {exc!r}"
    return None


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """Create a database for this run; yield its URL; drop it afterwards."""
    name = f"event_log_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        try:
            asyncio.run(_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            print(f"[bench] could not drop scratch database {name}: {exc!r}", file=sys.stderr)


async def _server_version(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=_CONNECT_TIMEOUT_S)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def server_version(url: str) -> str:
    """The server's version string, e.g. ``15.6``."""
    return asyncio.run(_server_version(url))


def truncate(url: str) -> None:
    """Empty ``event_log`` (a fresh heap and fresh indexes) before the next scenario."""
    asyncio.run(_execute(url, "TRUNCATE event_log"))
