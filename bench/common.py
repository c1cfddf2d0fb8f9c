"""Shared pieces of the benchmark: paths, the event inputs, timing and memory helpers.

Everything here is cheap and side-effect free at import time: no engine, no
event loop, no file is touched until a function is called.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "COLUMNS",
    "DATA_DIR",
    "INSERT_SQL",
    "RAW_COLUMNS",
    "RAW_INSERT_SQL",
    "ROOT",
    "SQLITE_PRAGMAS",
    "EventInput",
    "as_dict",
    "make_input",
    "peak_rss_mb",
    "percentile",
    "remove_sqlite_files",
    "sequential_events",
    "sqlite_url",
    "summarize_ms",
    "utc_now",
]

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: the working directory of every benchmark subprocess."""

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Cached databases and the last run's JSON (git-ignored)."""

COLUMNS = ("id", "event_type", "source", "task_id", "agent_id", "data", "timestamp")
INSERT_SQL = (
    f"INSERT INTO event_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
# The raw limits write every column the logger writes, the commit sequence
# number included, so both pay for the same table and indexes; on SQLite with the
# logger's statement (OR ROLLBACK: with the trigger of revision 0003 on the table,
# a plain INSERT keeps a statement journal per row, which the logger does not pay).
RAW_COLUMNS = (*COLUMNS, "seq")
RAW_INSERT_SQL = (
    f"INSERT OR ROLLBACK INTO event_log ({', '.join(RAW_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RAW_COLUMNS))})"
)

# The logger's SQLite tuning for file databases (see event_log._engine and
# docs/backends/sqlite.md): the raw limit must run under the same durability settings.
SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout = 5000",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = NORMAL",
)


class EventInput(NamedTuple):
    """The arguments of one benchmark event (everything but id and timestamp)."""

    event_type: str
    source: str
    task_id: str | None
    agent_id: str | None
    data: dict[str, Any] | None


# A 20-slot cycle approximating the swarm's mix: mostly tool calls, some bids,
# a task lifecycle, the odd status change and system note.
_MIX = (
    ("tool.called", "agent"),
    ("tool.completed", "agent"),
    ("tool.called", "agent"),
    ("tool.completed", "agent"),
    ("bid.submitted", "agent"),
    ("tool.called", "agent"),
    ("tool.completed", "agent"),
    ("task.created", "coordinator"),
    ("tool.called", "agent"),
    ("tool.completed", "agent"),
    ("bid.submitted", "agent"),
    ("auction.closed", "coordinator"),
    ("task.assigned", "coordinator"),
    ("task.started", "agent"),
    ("tool.called", "agent"),
    ("tool.completed", "agent"),
    ("agent.status_changed", "agent"),
    ("tool.called", "agent"),
    ("system.info", "coordinator"),
    ("task.completed", "agent"),
)
_TOOLS = ("search", "read_file", "write_file", "http_get", "run_tests")
_AGENTS = tuple(f"agent-{k:03d}" for k in range(500))


def make_input(i: int) -> EventInput:
    """The ``i``-th benchmark event: deterministic, realistic, with a small JSON payload.

    Every write scenario (the raw limits included) makes its inputs with this
    function inside its timed region, so they all pay the same for it.
    """
    event_type, role = _MIX[i % 20]
    agent = _AGENTS[i % 500]
    return EventInput(
        event_type,
        agent if role == "agent" else "coordinator",
        f"task-{i // 100:06d}",
        agent,
        {"seq": i, "bid_sats": 100 + i % 900, "tool": _TOOLS[i % 5], "ok": i % 31 != 0},
    )


def as_dict(event: EventInput) -> dict[str, Any]:
    """The event as a mapping ``log_events`` accepts."""
    return event._asdict()


def utc_now() -> datetime:
    return datetime.now(UTC)


def sqlite_url(path: Path) -> str:
    """The aiosqlite URL of a database file."""
    return f"sqlite+aiosqlite:///{path}"


def remove_sqlite_files(path: Path) -> None:
    """Delete a database file and its WAL and shared-memory files, if present."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize_ms(seconds: Iterable[float]) -> dict[str, float]:
    """Median, p99 and max of durations given in seconds, in milliseconds."""
    values = [s * 1000.0 for s in seconds]
    return {
        "p50_ms": percentile(values, 0.50),
        "p99_ms": percentile(values, 0.99),
        "max_ms": max(values) if values else float("nan"),
    }


def sequential_events(n: int) -> int:
    """How many events a latency-bound scenario (one call at a time) logs: N/10, at least 100."""
    return max(n // 10, 100)
