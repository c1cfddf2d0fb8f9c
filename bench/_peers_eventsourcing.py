"""The ``eventsourcing`` package's recorders, for ``python -m bench --peers``.

Its application recorders (``SQLiteApplicationRecorder``,
``PostgresApplicationRecorder``: what an ``eventsourcing`` application stores
its events with, each event also given a notification id that orders the whole
log, as event-log's commit sequence does) are used directly, with their
datastores' defaults (on SQLite: WAL at SQLite's default ``synchronous=FULL``,
a small pool; on PostgreSQL: a psycopg pool, a table lock and a NOTIFY per
insert). Each of our events becomes one stored event: ``originator_id`` its id
(a UUID), ``originator_version`` 1, ``topic`` its type and ``state`` the JSON
of the rest (source, task and agent ids, data, timestamp). ``create_table()``
runs before the clock starts.

Sequential: ``insert_events([event])`` one call after another. Batches:
``insert_events`` of 1,000 stored events at a time. A persistence error is
counted (a result), anything else fails the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ._peers_common import (
    PeerEvent,
    Result,
    Tally,
    count_rows,
    is_sqlite,
    peer_event,
    psycopg_params,
    sqlite_path,
    timed_calls,
)
from .writes import BATCH_SIZE

__all__ = ["eventsourcing_batches", "eventsourcing_sequential", "missing"]

_TABLE = "stored_events"

if TYPE_CHECKING:  # the package itself is optional (the bench extra)
    from eventsourcing.persistence import ApplicationRecorder, StoredEvent


def missing() -> str | None:
    """Why the recorders cannot run here (the package is not installed), or None."""
    try:
        import eventsourcing.persistence  # noqa: F401
    except ImportError:
        return "eventsourcing is not installed: pip install -e '.[bench]'"
    return None


def _stored(event: PeerEvent) -> StoredEvent:
    from eventsourcing.persistence import StoredEvent

    event_id, e, when = event
    state = {
        "source": e.source,
        "task_id": e.task_id,
        "agent_id": e.agent_id,
        "data": e.data,
        "timestamp": when.isoformat(),
    }
    return StoredEvent(
        originator_id=UUID(event_id),
        originator_version=1,
        topic=e.event_type,
        state=json.dumps(state).encode(),
    )


def _recorder(url: str) -> tuple[ApplicationRecorder, Callable[[], None]]:
    """An application recorder on ``url`` with its table made, and how to close it."""
    if is_sqlite(url):
        from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

        sqlite_store = SQLiteDatastore(sqlite_path(url))
        sqlite_recorder = SQLiteApplicationRecorder(sqlite_store)
        sqlite_recorder.create_table()
        return sqlite_recorder, sqlite_store.close
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    pg_store = PostgresDatastore(**psycopg_params(url))
    pg_recorder = PostgresApplicationRecorder(pg_store)
    pg_recorder.create_table()
    return pg_recorder, pg_store.close


def _run(url: str, n: int, batch_size: int) -> Result:
    from eventsourcing.persistence import PersistenceError

    recorder, close = _recorder(url)
    try:
        recorder.insert_events([_stored(peer_event(0))])  # warm-up: a connection in the pool
        tally = Tally()

        def insert(k: int) -> None:
            first = k * batch_size
            batch: Sequence[Any] = [
                _stored(peer_event(i)) for i in range(first, min(first + batch_size, n))
            ]
            try:
                recorder.insert_events(batch)
            except PersistenceError as exc:
                tally.add(exc, len(batch))

        result = timed_calls(-(-n // batch_size), insert)
    finally:
        close()
    result.update(tally.as_result(), events=n, batch_size=batch_size)
    return result


async def eventsourcing_sequential(url: str, n: int) -> Result:
    """``insert_events`` of one stored event, one call after another."""
    result = _run(url, n, 1)
    return await _counted(url, n, result)


async def eventsourcing_batches(url: str, n: int) -> Result:
    """``insert_events`` of 1,000 stored events at a time."""
    result = _run(url, n, BATCH_SIZE)
    return await _counted(url, n, result)


async def _counted(url: str, n: int, result: Result) -> Result:
    result["rows_in_table"] = await count_rows(url, _TABLE)
    result["expected_rows"] = n - result["errors"] + 1
    return result
