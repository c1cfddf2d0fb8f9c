"""Server databases kept at the newest revision between tests, emptied for each test.

Migrating an empty schema for every test that only needs an empty table at head
(most of the suite: conftest's ``log`` fixture) costs far more than the test.
Each pytest process keeps, per layout, one database that ``event_log.upgrade``
brought to head, and before each test:

- reads the database's state: its schema (every object, its definition, and on
  PostgreSQL whether a table was analysed) and the rows of every table but
  ``event_log`` (the revision, MariaDB's commit counter);
- when the schema is the one the upgrade made, empties ``event_log``
  (``TRUNCATE``) and puts back the other tables' rows where a test changed them;
- otherwise (the test changed the schema: an index, a downgrade, a dropped
  partition, another day's partitions) drops the database and makes it again
  with ``upgrade``.

So every test starts from what a fresh upgrade would leave. The admin
connections live on an event loop of their own, in a thread, away from the loops
that pytest-asyncio gives the tests; a connection that a test killed is opened
again.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import asyncmy  # type: ignore[import-untyped]
import asyncmy.errors  # type: ignore[import-untyped]
import asyncpg
from sqlalchemy.engine import make_url

from event_log import upgrade

__all__ = ["AdminLoop", "HeadDatabase", "MariadbHead", "PostgresHead", "State", "mariadb_create"]

T = TypeVar("T")

# A test that leaked an open transaction must fail the next reset, not hang it.
LOCK_TIMEOUT_S = 30

TABLE = "event_log"


class AdminLoop:
    """An event loop in a daemon thread: admin connections outlive one call there."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-database-admin", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@dataclass(frozen=True)
class State:
    """What a reset compares: the schema, and the rows of the tables beside event_log."""

    schema: str
    rows: dict[str, list[tuple[Any, ...]]]


class HeadDatabase(Protocol):
    url: str

    async def state(self) -> State: ...

    async def reset(self) -> None: ...

    async def drop(self) -> None: ...


# Every object of the user's schemas, as text that two fresh upgrades on the same day
# make alike (no oids, no file numbers). Partition bounds name the days.
_PG_SCHEMA = r"""
SELECT coalesce(string_agg(line, E'\n' ORDER BY line), '') FROM (
    SELECT 'schema ' || nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema'
  UNION ALL
    SELECT format('extension %s %s', extname, extversion) FROM pg_extension
  UNION ALL
    SELECT format('relation %s.%s %s %s %s %s %s', n.nspname, c.relname, c.relkind,
                  c.relpersistence, c.reloptions, c.relacl, pg_get_expr(c.relpartbound, c.oid))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT format('column %s.%s %s %s %s %s %s', a.attrelid::regclass, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
                  a.attgenerated, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT format('constraint %s %s %s', co.conrelid::regclass, co.conname,
                  pg_get_constraintdef(co.oid))
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT format('function %s %s', p.oid::regprocedure, md5(p.prosrc))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
  UNION ALL
    SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
    SELECT format('type %s %s', t.oid::regtype, t.typtype)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
      AND t.typrelid = 0 AND t.typelem = 0
  UNION ALL
    SELECT format('sequence %s.%s %s', schemaname, sequencename, last_value) FROM pg_sequences
  UNION ALL
    SELECT DISTINCT format('analysed %s.%s', schemaname, tablename) FROM pg_stats
    WHERE schemaname NOT LIKE 'pg\_%' AND schemaname <> 'information_schema'
) AS state(line)
"""

_PG_TABLES = r"""
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY 1
"""

# event_log's tables that hold pages: the plain table, or the partitions a test wrote to.
# (Truncating every partition would make new files for all of them and their indexes.)
_PG_WRITTEN = r"""
SELECT c.oid::regclass::text FROM pg_class c
WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
  AND (c.oid = $1::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree($1::regclass)))
  AND pg_relation_size(c.oid) > 0
"""


def _pg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresHead:
    """A PostgreSQL database at head (``partition``: event_log partitioned that way)."""

    def __init__(self, admin_url: str, name: str, partition: Literal["day"] | None) -> None:
        self._admin_url = admin_url
        self.url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        self._name = name
        self._partition = partition
        self._conn: asyncpg.Connection | None = None
        self._pristine: State | None = None

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_pg_dsn(self._admin_url), timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(_pg_dsn(self.url), timeout=5)
            await self._conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
        return self._conn

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _build(self) -> None:
        await self._close()
        await self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        await self._admin(f'CREATE DATABASE "{self._name}"')
        await upgrade(self.url, partition=self._partition)
        self._pristine = await self.state()

    async def state(self) -> State:
        conn = await self._connection()
        schema = str(await conn.fetchval(_PG_SCHEMA))
        rows = {}
        for table in [r[0] for r in await conn.fetch(_PG_TABLES)]:
            if table != TABLE:
                found = await conn.fetch(f'SELECT * FROM "{table}" ORDER BY 1')
                rows[table] = [tuple(r) for r in found]
        return State(schema, rows)

    async def reset(self) -> None:
        if self._pristine is None:
            await self._build()
            return
        try:
            state = await self.state()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            if self._conn is None or not self._conn.is_closed():
                raise
            state = await self.state()  # a test killed the connection: once more
        if state.schema != self._pristine.schema:
            await self._build()
            return
        conn = await self._connection()
        async with conn.transaction():
            written = [r[0] for r in await conn.fetch(_PG_WRITTEN, TABLE)]
            if written:
                await conn.execute(f"TRUNCATE {', '.join(written)} RESTART IDENTITY")
            assert not await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{TABLE}")')
            for table, rows in self._pristine.rows.items():
                if state.rows.get(table) != rows:
                    await conn.execute(f'DELETE FROM "{table}"')
                    await conn.copy_records_to_table(table, records=rows)

    async def drop(self) -> None:
        await self._close()
        await self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


def mariadb_create(name: str) -> str:
    return f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"


class MariadbHead:
    """A MariaDB database at head."""

    def __init__(self, admin_url: str, name: str) -> None:
        self.url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        self._parsed = make_url(admin_url)
        self._name = name
        self._conn: Any = None
        self._pristine: State | None = None

    async def _connection(self) -> Any:
        if self._conn is None:
            parsed = self._parsed
            self._conn = await asyncmy.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 3306,
                user=parsed.username or "root",
                password=parsed.password or "",
                connect_timeout=5,
                autocommit=True,
            )
            await self._execute(f"SET SESSION lock_wait_timeout = {LOCK_TIMEOUT_S}")
        return self._conn

    async def _execute(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        conn = await self._connection()
        async with conn.cursor() as cursor:
            await cursor.execute(sql, args)
            return list(await cursor.fetchall() or [])

    async def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _build(self) -> None:
        await self._execute(f"DROP DATABASE IF EXISTS `{self._name}`")
        await self._execute(mariadb_create(self._name))
        await upgrade(self.url)
        self._pristine = await self.state()

    async def state(self) -> State:
        db = self._name
        objects = await self._execute(
            "SELECT table_name, table_type FROM information_schema.tables "
            "WHERE table_schema = %s ORDER BY 1",
            (db,),
        )
        lines = [f"{name} {kind}" for name, kind in objects]
        for name, _ in objects:
            lines += [str(row) for row in await self._execute(f"SHOW CREATE TABLE `{db}`.`{name}`")]
        for query in (
            "SELECT trigger_name, action_statement FROM information_schema.triggers "
            "WHERE trigger_schema = %s ORDER BY 1",
            "SELECT routine_name, routine_definition FROM information_schema.routines "
            "WHERE routine_schema = %s ORDER BY 1",
            "SELECT event_name FROM information_schema.events WHERE event_schema = %s ORDER BY 1",
        ):
            lines += [str(row) for row in await self._execute(query, (db,))]
        rows = {}
        for name, kind in objects:
            if name != TABLE and kind == "BASE TABLE":
                rows[name] = await self._execute(f"SELECT * FROM `{db}`.`{name}` ORDER BY 1")
        return State("\n".join(lines), rows)

    async def reset(self) -> None:
        if self._pristine is None:
            await self._build()
            return
        try:
            state = await self.state()
        except asyncmy.errors.OperationalError:
            await self._close()  # a test killed the connection: once more
            state = await self.state()
        if state.schema != self._pristine.schema:
            await self._build()
            return
        await self._execute(f"TRUNCATE TABLE `{self._name}`.`{TABLE}`")
        for table, rows in self._pristine.rows.items():
            if state.rows.get(table) != rows:
                await self._execute(f"DELETE FROM `{self._name}`.`{table}`")
                for row in rows:
                    marks = ", ".join(["%s"] * len(row))
                    await self._execute(
                        f"INSERT INTO `{self._name}`.`{table}` VALUES ({marks})", row
                    )

    async def drop(self) -> None:
        await self._execute(f"DROP DATABASE IF EXISTS `{self._name}`")
        await self._close()
