"""What the PostgreSQL sink tests ask of a sink's connection, whichever driver holds it."""

from __future__ import annotations

from typing import Any

from event_log import EventLogger
from event_log.backends.postgresql._sink import PostgresSink


def pg_sink(log: EventLogger) -> PostgresSink:
    sink = log._writer._sink
    assert isinstance(sink, PostgresSink)
    return sink


def server_pid(sink: PostgresSink) -> int:
    """The server process behind the sink's held connection (asyncpg or psycopg)."""
    driver = sink._driver
    assert driver is not None
    if hasattr(driver, "get_server_pid"):  # asyncpg
        return int(driver.get_server_pid())
    return int(driver.info.backend_pid)  # psycopg


def cut(sink: PostgresSink) -> None:
    """Close the sink's connection under it, as a lost network would."""
    sink._terminate(sink._driver)


def make_batch(n: int, **extra: Any) -> list[dict[str, Any]]:
    """``n`` tool.called events numbered in their data, with ``extra`` fields."""
    return [
        {"event_type": "tool.called", "source": "s", "data": {"i": i}, **extra} for i in range(n)
    ]
