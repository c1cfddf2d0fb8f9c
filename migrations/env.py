"""Alembic environment for event-log: the async template plus connection sharing.

The database URL comes from ``-x url=...``, then ``$EVENT_LOG_URL``, then
``sqlalchemy.url`` in the ini file when set, then event_log's ``DEFAULT_URL``.
``event_log.upgrade()`` (and tests) hand in their own connection through
``config.attributes["connection"]`` instead (Alembic cookbook, "Sharing a
Connection across one or more programmatic migration commands").

Time partitioning (PostgreSQL) is a layout option, not a revision: with
``-x partition=day|month|none`` (and ``-x partition_ahead=N``; or the same keys
in ``config.attributes``, which ``event_log.upgrade(url, partition=...)``
sets), the table is converted after the revisions ran, in the same
transaction. It takes no place in the revision chain, so revisions added
later need no reordering around it (see ``event_log._partition``).

On MariaDB an upgrade waits up to 300 s for one running elsewhere (``-x
lock_timeout=S`` or ``config.attributes["lock_timeout"]`` to change that), then
fails with ``event_log.StorageError``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Index, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import SchemaItem

from event_log._engine import DEFAULT_URL, ENV_URL, create_engine
from event_log._errors import StorageError
from event_log._schema import SEQUENCE_TABLE, Base, has_sequence_table, indexes_on
from event_log.backends.postgresql._data_index import is_optional_index
from event_log.backends.postgresql._partitions import (
    DEFAULT_PARTITION,
    EXPIRED_PREFIX,
    PartitionLayout,
    check_partition_by,
    set_partitioning,
)

config = context.config

# The CLI configures logging from alembic.ini; event_log.upgrade() passes no
# file and leaves the application's logging alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Any constant works; it only has to be the same for every process that upgrades.
_PG_ADVISORY_LOCK_KEY = 0x6576_656E_745F_6C6F  # "event_lo"
# MariaDB's named locks are server-wide: the name includes the database's.
_MYSQL_LOCK_NAME = "CONCAT('event_log.upgrade.', DATABASE())"
# How long an upgrade waits for another one on MariaDB before failing, unless
# ``-x lock_timeout=S`` (or ``config.attributes["lock_timeout"]``) says otherwise.
_MYSQL_LOCK_TIMEOUT_S = 300
_MYSQL = ("mysql", "mariadb")
# Revision 0003's empty table on SQLite whose indexes hold the original module's
# index names, so its CREATE INDEX IF NOT EXISTS adds nothing; not in the model.
_ORIGINAL_INDEX_NAMES = "event_log_original_index_names"


def _database_url() -> str:
    x_url = context.get_x_argument(as_dictionary=True).get("url")
    return (
        x_url or os.environ.get(ENV_URL) or config.get_main_option("sqlalchemy.url") or DEFAULT_URL
    )


def _partition_request() -> PartitionLayout | None:
    """``-x partition=...`` or ``config.attributes["partition"]``: day, month, none."""
    wanted = config.attributes.get("partition") or context.get_x_argument(as_dictionary=True).get(
        "partition"
    )
    return None if wanted is None else check_partition_by(wanted)


def _partition_ahead() -> int | None:
    ahead = config.attributes.get("partition_ahead") or context.get_x_argument(
        as_dictionary=True
    ).get("partition_ahead")
    return None if ahead is None else int(ahead)


def _lock_timeout() -> int:
    """Seconds a MariaDB upgrade waits for the upgrade lock another one holds."""
    seconds = config.attributes.get("lock_timeout")
    if seconds is None:
        seconds = context.get_x_argument(as_dictionary=True).get("lock_timeout")
    return _MYSQL_LOCK_TIMEOUT_S if seconds is None else int(seconds)


def _include_object_for(connection: Connection) -> Callable[..., bool]:
    """Autogenerate (``alembic check``) leaves out partitions, the optional GIN index
    on data (see _data_index), the SQLite table that holds the original module's
    index names (see revision 0003), and the model's objects that this kind of
    database does not have (PostgreSQL has no sequence counter and no index on
    ``seq``; the others no index on ``xid``; see revision 0004)."""
    dialect = connection.dialect
    present = {str(index.name) for index in indexes_on(dialect)}

    def include_object(
        obj: SchemaItem,
        name: str | None,
        type_: str,
        reflected: bool,
        compare_to: SchemaItem | None,
    ) -> bool:
        name = name or ""
        if type_ == "index" and reflected and is_optional_index(name):
            return False  # the optional GIN index on data (_data_index)
        if type_ == "index" and not reflected and isinstance(obj, Index):
            return obj.table is None or obj.table.name != "event_log" or name in present
        if type_ == "table":
            if name == SEQUENCE_TABLE.name and not has_sequence_table(dialect):
                return False
            return name != _ORIGINAL_INDEX_NAMES and not name.startswith(
                (DEFAULT_PARTITION, "event_log_p", EXPIRED_PREFIX)
            )
        return True

    return include_object


def run_migrations_offline() -> None:
    """Write the migration SQL (``alembic upgrade head --sql``) without connecting.

    Offline scripts assume a fresh database: adopting an original table needs
    to read its rows, which only an online upgrade can do.
    """
    url = make_url(_database_url())
    sqlite = url.get_backend_name() == "sqlite"
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=sqlite,
        compare_type=True,
        # SQLite runs DDL inside transactions too: wrap the script in BEGIN/COMMIT.
        transactional_ddl=True,
    )
    if _partition_request() not in (None, "none"):
        raise ValueError("-x partition needs an online upgrade: converting reads the table's rows")
    with context.begin_transaction():
        context.run_migrations()


def _serialize(connection: Connection) -> None:
    """Make concurrent upgrades of one database take turns, and make SQLite's atomic.

    Two processes opening a logger at once both run the upgrade; the second
    must wait for the first and then see its result, not race it to CREATE TABLE.

    On SQLite this also matters for atomicity: pysqlite/aiosqlite in their
    default mode emit BEGIN only before INSERT/UPDATE/DELETE, so DDL would
    autocommit statement by statement and a failed upgrade (e.g. an adoption
    that meets an unparsable row) would leave a half-renamed table behind.
    An explicit BEGIN IMMEDIATE opens a real transaction that holds every
    statement of the upgrade, and takes the write lock up front (waiting up to
    the busy timeout) so the version table is read after any other upgrader
    committed.
    """
    if connection.dialect.name == "sqlite":
        driver = connection.connection.driver_connection
        if not getattr(driver, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        # Released when the transaction ends, by commit or rollback.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ADVISORY_LOCK_KEY}
        )


class _IgnoredPrimaryKeyName(logging.Filter):
    """MariaDB warns that it ignores a PRIMARY KEY constraint's name (it is always
    PRIMARY); asyncmy logs each server warning. The names matter on the other
    backends, so the tables keep them, and the warning is dropped here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ignored for PRIMARY key" not in record.getMessage()


def _drop_empty_version_table(connection: Connection) -> None:
    """After a failed upgrade on MariaDB: drop Alembic's version table if it is empty.

    Alembic creates it first, and that DDL stays. An upgrade refused before any
    revision ran (e.g. a foreign ``event_log`` table) then leaves the database
    as it found it, as on the other backends.
    """
    exists = connection.exec_driver_sql(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'alembic_version'"
    ).scalar()
    if exists and not connection.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar():
        connection.exec_driver_sql("DROP TABLE alembic_version")


@contextmanager
def _mysql_lock(connection: Connection) -> Iterator[None]:
    """On MariaDB, run the upgrade under a named lock, without the driver's notes
    about primary key names; elsewhere nothing."""
    if connection.dialect.name not in _MYSQL:
        yield
        return
    quiet = _IgnoredPrimaryKeyName()
    driver_log = logging.getLogger("asyncmy")
    driver_log.addFilter(quiet)
    try:
        with _mysql_named_lock(connection):
            yield
    finally:
        driver_log.removeFilter(quiet)


@contextmanager
def _mysql_named_lock(connection: Connection) -> Iterator[None]:
    """Hold a named lock (GET_LOCK) around the upgrade, as PostgreSQL's advisory lock.

    MariaDB commits DDL as it goes, so there is no transaction to hold a lock
    to its end: a named lock belongs to the session and lasts until released.
    Before releasing it, the upgrade's last revision stamp is committed, so the
    next upgrader reads the new revision, not the old one. A failed upgrade is
    not undone (see the revisions' docstrings for how the next one copes).
    """
    timeout = _lock_timeout()
    got = connection.exec_driver_sql(f"SELECT GET_LOCK({_MYSQL_LOCK_NAME}, {timeout})").scalar()
    if got != 1:
        raise StorageError(
            f"schema upgrade failed: another event_log upgrade held the upgrade lock "
            f"for {timeout} s"
        )
    try:
        yield
        # Commit at the driver level: the caller's transaction object (if it shares
        # its connection) has nothing left to commit, since DDL committed already.
        connection.exec_driver_sql("COMMIT")
    except BaseException:
        # Best effort: the upgrade's own error is the one to report.
        with suppress(SQLAlchemyError):
            connection.exec_driver_sql("ROLLBACK")
            _drop_empty_version_table(connection)
        raise
    finally:
        # A lost connection released the lock with its session.
        with suppress(SQLAlchemyError):
            connection.exec_driver_sql(f"DO RELEASE_LOCK({_MYSQL_LOCK_NAME})")


def do_run_migrations(connection: Connection) -> None:
    wanted = _partition_request()
    ahead = _partition_ahead()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # One transaction for the whole upgrade on SQLite and PostgreSQL (see
        # _serialize). MariaDB commits each DDL statement: it has no such thing.
        transactional_ddl=connection.dialect.name not in _MYSQL,
        include_object=_include_object_for(connection),
    )
    with _mysql_lock(connection), context.begin_transaction():
        _serialize(connection)
        context.run_migrations()
        if wanted is not None and _has_event_log(connection):
            set_partitioning(connection, wanted, ahead=ahead)


def _has_event_log(connection: Connection) -> bool:
    # After "downgrade base" there is nothing to (un)partition.
    return bool(inspect(connection).has_table("event_log"))


async def run_async_migrations() -> None:
    # event_log's own factory: the same SQLite pragmas as the logger, and the
    # folder of a new SQLite file is created.
    engine = create_engine(make_url(_database_url()))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        do_run_migrations(connection)
    elif connection is None:
        asyncio.run(run_async_migrations())
    else:
        raise TypeError(
            'config.attributes["connection"] must be a sqlalchemy.engine.Connection '
            f"(an AsyncConnection's run_sync() hands one in), not {type(connection).__name__}"
        )


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
