"""The original system's write path, re-created: what ``event_log.sync`` replaces.

The module event-log replaces (``swarm.event_log``, ADR 017) logged each event
synchronously: a new ``sqlite3`` connection per call, its five DDL statements
(the table and four indexes, ``IF NOT EXISTS``), one ``INSERT`` with a uuid4 id,
``data`` as ``json.dumps`` text and the timestamp as an ISO 8601 string, a
commit, and the connection closed. SQLite's defaults stay as they were (a
rollback journal, ``synchronous=FULL``). The benchmark's "original" rows and
the coexistence tests write this way.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["DDL", "log_event"]

DDL = (
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
    "CREATE INDEX IF NOT EXISTS idx_event_log_timestamp ON event_log(timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_event_log_type ON event_log(event_type)",
)


def _connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path))
    for statement in DDL:
        conn.execute(statement)
    conn.commit()
    return conn


def log_event(
    path: str | Path,
    event_type: str,
    source: str,
    task_id: str | None = None,
    agent_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    """Log one event the original way; its id."""
    event_id = str(uuid.uuid4())
    conn = _connect(path)
    try:
        conn.execute(
            "INSERT INTO event_log (id, event_type, source, task_id, agent_id, data, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                str(event_type),
                source,
                task_id,
                agent_id,
                json.dumps(data) if data else None,
                datetime.now(UTC).isoformat(),
            ),
        )
        conn.commit()
    finally:
        conn.close()
    return event_id
