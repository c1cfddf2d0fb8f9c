"""The original module's way of writing, for ``python -m bench --peers``.

What the original design did for every event (:mod:`bench.original` keeps it):
open a new connection with a synchronous driver, run its five DDL statements
(``CREATE TABLE IF NOT EXISTS event_log`` and four ``CREATE INDEX IF NOT
EXISTS``), INSERT one row naming its seven columns (``data`` as ``json.dumps``
text, the timestamp as ``isoformat()`` text), commit and close. On SQLite with
``sqlite3`` under its defaults (whatever journal mode the file has: a new file
keeps the rollback journal; a 5 s busy timeout), exactly as
:func:`bench.original.log_event`; on PostgreSQL the same statements through
``psycopg`` (``%s`` placeholders; the DDL and the INSERT in the transaction
psycopg opens, committed together). One call at a time: the original module
had no concurrency of its own.

The one departure: the id is given (the same UUIDv7 every peer writes, see
:mod:`bench._peers_common`), where the original made a uuid4.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

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
from .original import DDL

__all__ = ["original_sequential"]

_COLUMNS = "id, event_type, source, task_id, agent_id, data, timestamp"
_SQLITE_INSERT = f"INSERT INTO event_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_PG_INSERT = f"INSERT INTO event_log ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"


def _values(event: PeerEvent) -> tuple[Any, ...]:
    event_id, e, when = event
    data = None if e.data is None else json.dumps(e.data)
    return (event_id, e.event_type, e.source, e.task_id, e.agent_id, data, when.isoformat())


def write_sqlite(path: str, event: PeerEvent) -> None:
    """One event the original way on SQLite: connect, the DDL, INSERT, commit, close."""
    conn = sqlite3.connect(path)
    try:
        for statement in DDL:
            conn.execute(statement)
        conn.execute(_SQLITE_INSERT, _values(event))
        conn.commit()
    finally:
        conn.close()


def write_postgres(params: dict[str, Any], event: PeerEvent) -> None:
    """One event the original way on PostgreSQL, through psycopg."""
    import psycopg

    conn = psycopg.connect(**params)
    try:
        for statement in DDL:
            conn.execute(statement)
        conn.execute(_PG_INSERT, _values(event))
        conn.commit()
    finally:
        conn.close()


async def original_sequential(url: str, n: int) -> Result:
    """N events the original way, one call after another (after one warm-up call,
    which creates the table and its indexes)."""
    if is_sqlite(url):
        path = sqlite_path(url)

        def write(event: PeerEvent) -> None:
            write_sqlite(path, event)

        counted: tuple[type[Exception], ...] = (sqlite3.Error,)
    else:
        import psycopg

        params = psycopg_params(url)

        def write(event: PeerEvent) -> None:
            write_postgres(params, event)

        counted = (psycopg.Error,)
    write(peer_event(0))
    tally = Tally()

    def call(i: int) -> None:
        try:
            write(peer_event(i))
        except counted as exc:
            tally.add(exc)

    result = timed_calls(n, call)
    result.update(tally.as_result(), events=n)
    result["rows_in_table"] = await count_rows(url, "event_log")
    result["expected_rows"] = n - tally.count + 1
    return result
