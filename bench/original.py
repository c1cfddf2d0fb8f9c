"""The original module's write path (``swarm.event_log``), re-created.

The benchmark's "original module" rows and the coexistence tests write this way.

What it did for every event, and what this does: open a new ``sqlite3``
connection with the module's defaults (deferred transactions, a 5 s busy
timeout, whatever journal mode the file has), run its five DDL statements
(``CREATE TABLE IF NOT EXISTS event_log`` and four ``CREATE INDEX IF NOT
EXISTS idx_event_log_*``), INSERT one row naming its seven columns, with a
uuid4 id, ``data`` as ``json.dumps`` text or NULL and the timestamp as
``datetime.isoformat()`` text, commit and close. Its timestamps were
``datetime.utcnow().isoformat()`` (naive, ``2026-03-01T12:00:00.123456``, no
fraction when the microsecond is 0) in one version and
``datetime.now(timezone.utc).isoformat()`` (``...+00:00``) in another; both
are here (``naive``). The repository's records of its DDL name the timestamp
index ``idx_event_log_timestamp`` and ``idx_event_log_time``: ``ddl()`` makes
either.

Run as ``python -m bench.original PATH`` it is a writer process for
the tests: for each line read from stdin (``event_type source [naive]``) it
writes one event and prints ``id timestamp`` once committed, so a test knows
the commit order of its writes and another writer's.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["DDL", "TIMESTAMP_INDEX_NAMES", "Written", "ddl", "log_event"]

TIMESTAMP_INDEX_NAMES = ("idx_event_log_timestamp", "idx_event_log_time")


def ddl(timestamp_index: str = TIMESTAMP_INDEX_NAMES[0]) -> tuple[str, ...]:
    """The original's five DDL statements, its timestamp index named ``timestamp_index``."""
    return (
        """CREATE TABLE IF NOT EXISTS event_log (
            id TEXT PRIMARY KEY,
            event_type TEXT NOT NULL,
            source TEXT NOT NULL,
            task_id TEXT,
            agent_id TEXT,
            data TEXT,
            timestamp TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS idx_event_log_task ON event_log(task_id)",
        "CREATE INDEX IF NOT EXISTS idx_event_log_agent ON event_log(agent_id)",
        f"CREATE INDEX IF NOT EXISTS {timestamp_index} ON event_log(timestamp)",
        "CREATE INDEX IF NOT EXISTS idx_event_log_type ON event_log(event_type)",
    )


DDL = ddl()


@dataclass(frozen=True, slots=True)
class Written:
    """One row as the original wrote it: its id and the text of its timestamp and data."""

    id: str
    timestamp: str
    data: str | None


def log_event(
    path: str | Path,
    event_type: str,
    source: str,
    task_id: str | None = None,
    agent_id: str | None = None,
    data: dict[str, Any] | None = None,
    *,
    naive: bool = False,
    now: Callable[[], datetime] | None = None,
    statements: tuple[str, ...] = DDL,
) -> Written:
    """Write one event the original way: a connection of its own, the DDL, one INSERT.

    ``naive``: the ``utcnow()`` version's timestamps. ``now`` replaces the clock
    (an aware datetime) so a test can write an instant with no fraction.
    """
    instant = (now or (lambda: datetime.now(UTC)))()
    # utcnow().isoformat() is this text (utcnow itself is deprecated since 3.12).
    timestamp = instant.astimezone(UTC).replace(tzinfo=None) if naive else instant
    row = Written(
        str(uuid.uuid4()), timestamp.isoformat(), None if data is None else json.dumps(data)
    )
    conn = sqlite3.connect(str(path))
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.id, event_type, source, task_id, agent_id, row.data, row.timestamp),
        )
        conn.commit()
    finally:
        conn.close()
    return row


def main(argv: list[str]) -> int:
    """Write an event per line of stdin, printing ``id timestamp`` after each commit."""
    path = argv[1]
    for line in sys.stdin:
        event_type, source, *style = line.split()
        row = log_event(path, event_type, source, data={"pid": "child"}, naive=style == ["naive"])
        print(row.id, row.timestamp, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
