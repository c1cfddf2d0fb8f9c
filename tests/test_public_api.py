"""The public names, and nothing created at import time."""

from __future__ import annotations

import subprocess
import sys

import event_log

PROMISED = {
    "EventLogger",
    "EventType",
    "Event",
    "NewEvent",
    "Page",
    "EventLogError",
    "InvalidEventError",
    "InvalidCursorError",
    "StorageError",
    "LoggerClosedError",
    "upgrade",
    "DEFAULT_URL",
    "EventFilter",
    "QueueFullError",
    "HistogramBucket",
    "RetentionPolicy",
}


def test_exported_names() -> None:
    assert set(event_log.__all__) == PROMISED
    assert event_log.__all__ == sorted(event_log.__all__)
    for name in PROMISED:
        assert getattr(event_log, name) is not None


def test_exception_tree() -> None:
    from event_log import (
        EventLogError,
        InvalidCursorError,
        InvalidEventError,
        LoggerClosedError,
        StorageError,
    )

    for error in (InvalidEventError, InvalidCursorError, StorageError, LoggerClosedError):
        assert issubclass(error, EventLogError)
    assert issubclass(InvalidEventError, ValueError)
    assert issubclass(InvalidCursorError, ValueError)


def test_event_type_members() -> None:
    from event_log import EventType

    assert EventType.TASK_ASSIGNED == "task.assigned"
    assert EventType.AGENT_STATUS_CHANGED.value == "agent.status_changed"
    assert len(EventType) == 17


def test_import_creates_no_engine_loop_or_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import asyncio, gc, event_log\n"
        "from sqlalchemy.ext.asyncio import AsyncEngine\n"
        "assert not [o for o in gc.get_objects() if isinstance(o, AsyncEngine)]\n"
        "try:\n    asyncio.get_running_loop()\nexcept RuntimeError:\n    pass\n"
        "else:\n    raise SystemExit('a loop is running')\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert list(tmp_path.iterdir()) == []


def test_import_leaves_alembic_until_a_migration() -> None:
    # Alembic (with Mako and Pygments) would be about a sixth of the objects
    # a logging process holds, and every full garbage collection walks them.
    code = (
        "import sys, event_log\n"
        "loaded = sorted({'alembic', 'mako', 'pygments'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
