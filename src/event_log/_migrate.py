"""``upgrade()``: run the packaged Alembic scripts against a URL or an engine.

The scripts are the repository's root ``migrations/`` folder, which the wheel
carries as ``event_log/migrations`` (see pyproject.toml), so an installed
package upgrades its database without a checkout or an ``alembic.ini``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from ._engine import create_engine, resolve_url
from ._errors import RevisionError, translate_storage_errors
from .backends import backend_for_url
from .backends.postgresql._partitions import PartitionLayout, check_partition_by

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["alembic_config", "script_location", "upgrade"]

# src/event_log/_migrate.py -> the checkout's root, for editable installs.
_CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

# Alembic keeps the running migration's context in module globals
# (alembic.context, alembic.op), so two upgrades in one process, e.g. two
# loggers opened at once, must not interleave, whatever loop or thread they
# run on. Other processes are kept in turn by the database (see env.py).
_running = threading.Lock()


@asynccontextmanager
async def _one_at_a_time() -> AsyncIterator[None]:
    # Polling, not a blocking acquire: waiting must neither block the event
    # loop nor leave a lock taken by a cancelled waiter. Upgrades are rare and
    # short, so a few milliseconds of latency cost nothing.
    # (An asyncio primitive would belong to one event loop; this lock spans them.)
    while not _running.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        _running.release()


def script_location() -> Path:
    """The migrations folder: inside the installed package, else the checkout's."""
    packaged = files("event_log") / "migrations"
    # Alembic reads scripts from the file system; a zipped package has no Path.
    if isinstance(packaged, Path) and (packaged / "env.py").is_file():
        return packaged
    if (_CHECKOUT_MIGRATIONS / "env.py").is_file():
        return _CHECKOUT_MIGRATIONS
    raise RuntimeError(
        f"event_log's Alembic scripts are missing: looked for {packaged} (installed wheel) "
        f"and {_CHECKOUT_MIGRATIONS} (source checkout)"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`Config` for the packaged scripts, without any ini file.

    With ``connection``, the scripts' env.py migrates on it (the cookbook's
    "connection sharing") and leaves its transaction to the caller.

    Alembic is imported here, not at the top: with Mako and Pygments it
    would be about a sixth of the objects ``import event_log`` leaves, which
    every full garbage collection of a logging process walks.
    """
    from alembic.config import Config

    config = Config()
    # Config values go through configparser interpolation: escape "%".
    config.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _known_revisions() -> frozenset[str]:
    """The revisions this event-log ships (read once: they never change while it runs)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


def _upgrade_on(
    connection: Connection,
    partition: PartitionLayout | None = None,
    partition_ahead: int | None = None,
) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = alembic_config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None and current not in _known_revisions():
        raise RevisionError(
            f"the database is at schema revision {current}, which this event-log does not "
            "know (was it upgraded by a newer version? use that version)"
        )
    if partition is not None:
        config.attributes["partition"] = partition
    if partition_ahead is not None:
        config.attributes["partition_ahead"] = partition_ahead
    command.upgrade(config, "head")


async def _upgrade_engine(
    engine: AsyncEngine, partition: PartitionLayout | None, partition_ahead: int | None
) -> None:
    if partition in ("day", "month"):
        # Before any revision runs: MariaDB commits DDL as it goes, so a refusal
        # after the revisions would leave them applied.
        backend = backend_for_url(engine.url)
        if backend.partitions is None:
            raise ValueError(
                f"time partitioning needs PostgreSQL; this database is {backend.name} "
                "(prune_events deletes in batches there)"
            )
    # One transaction for the whole upgrade; committed when the block exits.
    async with _one_at_a_time(), engine.begin() as connection:
        await connection.run_sync(_upgrade_on, partition, partition_ahead)


async def upgrade(
    url_or_engine: str | URL | AsyncEngine | None = None,
    *,
    partition: PartitionLayout | None = None,
    partition_ahead: int | None = None,
) -> None:
    """Bring the database's schema to the newest revision; a no-op when it is there.

    ``url_or_engine`` is a database URL (``None``: ``$EVENT_LOG_URL``, then
    ``DEFAULT_URL``), for which an engine is made and disposed here, or the
    caller's :class:`AsyncEngine`, which is used and left open. A database
    failure raises :class:`~event_log.StorageError`; nothing is left half done.

    ``partition`` (PostgreSQL only): "day" or "month" range-partitions
    ``event_log`` by timestamp, keeping every row, with the current period's
    partition and ``partition_ahead`` more (default 7 days or 2 months);
    "none" turns a partitioned table back into a plain one; None (the
    default) leaves the layout as it is. ``ValueError`` for another value, for
    "day"/"month" on SQLite, and for a table partitioned the other way.
    """
    if partition is not None:
        partition = check_partition_by(partition)
    if partition_ahead is not None and partition_ahead < 0:
        raise ValueError("partition_ahead must be >= 0")
    with translate_storage_errors("schema upgrade"):
        if isinstance(url_or_engine, AsyncEngine):
            await _upgrade_engine(url_or_engine, partition, partition_ahead)
            return
        engine = create_engine(resolve_url(url_or_engine))
        try:
            await _upgrade_engine(engine, partition, partition_ahead)
        finally:
            await engine.dispose()
